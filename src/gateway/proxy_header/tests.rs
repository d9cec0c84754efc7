use super::*;

fn v2(command: u8, family: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = V2_SIGNATURE.to_vec();
    out.push(0x20 | command);
    out.push(family);
    out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

#[test]
fn v1_names_the_client() {
    let line = b"PROXY TCP4 192.0.2.7 198.51.100.1 51234 2222\r\nSSH-2.0-x\r\n";
    let Ok(Parsed::Done(Header::Relayed(addr), len)) = parse(line) else {
        panic!("{:?}", parse(line));
    };
    assert_eq!(addr, "192.0.2.7:51234".parse().unwrap());
    assert_eq!(&line[len..], b"SSH-2.0-x\r\n");
    let six = b"PROXY TCP6 2001:db8::7 2001:db8::1 4000 22\r\n";
    assert!(matches!(
        parse(six),
        Ok(Parsed::Done(Header::Relayed(a), _)) if a == "[2001:db8::7]:4000".parse().unwrap()
    ));
    assert_eq!(
        parse(b"PROXY UNKNOWN\r\n"),
        Ok(Parsed::Done(Header::Local, 15))
    );
}

#[test]
fn v2_names_the_client_and_local_is_the_proxys_own() {
    let mut block = vec![192, 0, 2, 7, 198, 51, 100, 1];
    block.extend_from_slice(&51234u16.to_be_bytes());
    block.extend_from_slice(&2222u16.to_be_bytes());
    block.extend_from_slice(&[0x03, 0, 4, 1, 2, 3, 4]); // a TLV, ignored
    let header = v2(1, 0x11, &block);
    assert_eq!(
        parse(&header),
        Ok(Parsed::Done(
            Header::Relayed("192.0.2.7:51234".parse().unwrap()),
            header.len()
        ))
    );
    let mut block6 = vec![0u8; 36];
    block6[..16].copy_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().unwrap().octets());
    block6[32..34].copy_from_slice(&4000u16.to_be_bytes());
    assert!(matches!(
        parse(&v2(1, 0x21, &block6)),
        Ok(Parsed::Done(Header::Relayed(a), _)) if a == "[2001:db8::7]:4000".parse().unwrap()
    ));
    let local = v2(0, 0, &[]);
    assert_eq!(parse(&local), Ok(Parsed::Done(Header::Local, 16)));
}

#[test]
fn partial_headers_ask_for_more_and_other_bytes_are_no_header() {
    let line = b"PROXY TCP4 192.0.2.7 198.51.100.1 51234 2222\r\n";
    for n in 0..line.len() {
        assert_eq!(parse(&line[..n]), Ok(Parsed::Incomplete), "{n} bytes");
    }
    let header = v2(1, 0x11, &[0; 12]);
    for n in 0..header.len() {
        assert_eq!(parse(&header[..n]), Ok(Parsed::Incomplete), "{n} bytes");
    }
    assert_eq!(parse(b"SSH-2.0-OpenSSH_9.2\r\n"), Err(HeaderError::Missing));
    assert!(!is_prefix_of_either(b"SSH-"));
    assert!(is_prefix_of_either(b"PRO"));
    assert!(is_prefix_of_either(b"\r\n\r\n\0"));
}

#[test]
fn malformed_headers_are_refused() {
    for bad in [
        &b"PROXY TCP4 192.0.2.7 198.51.100.1 051234 2222\r\n"[..],
        b"PROXY TCP4 192.0.2.7 198.51.100.1 70000 2222\r\n",
        b"PROXY TCP4 2001:db8::7 198.51.100.1 1 2\r\n",
        b"PROXY TCP4 192.0.2.7 198.51.100.1 1\r\n",
        b"PROXY TCP4 host.example 198.51.100.1 1 2\r\n",
        b"PROXY TCP4 192.0.2.7  198.51.100.1 1 2\r\n",
    ] {
        assert!(
            matches!(parse(bad), Err(HeaderError::Malformed(_))),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    let long = [&b"PROXY "[..], &[b'x'; 120]].concat();
    assert!(matches!(parse(&long), Err(HeaderError::Malformed(_))));
    assert!(matches!(
        parse(&v2(1, 0x11, &[0; 4])),
        Err(HeaderError::Malformed(_))
    ));
    assert!(matches!(
        parse(&v2(1, 0x31, &[0; 216])),
        Err(HeaderError::Malformed(_))
    ));
    assert!(matches!(
        parse(&v2(5, 0x11, &[0; 12])),
        Err(HeaderError::Malformed(_))
    ));
    let mut too_long = v2(1, 0x11, &[]);
    too_long[14..16].copy_from_slice(&600u16.to_be_bytes());
    assert!(matches!(parse(&too_long), Err(HeaderError::Malformed(_))));
    let mut v3 = v2(1, 0x11, &[0; 12]);
    v3[12] = 0x31;
    assert!(matches!(parse(&v3), Err(HeaderError::Malformed(_))));
}
