//! Any text as `portcullis.toml`: the config parser never panics, a parsed
//! config hands out only absolute paths, and a parse error points at a line
//! of the text.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use portcullis::config::{Config, ConfigError};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let path = Path::new("/etc/portcullis/portcullis.toml");
    match Config::parse(path, &text) {
        Ok(config) => {
            let paths = [&config.policy_dir, &config.store, &config.task_ca_key]
                .into_iter()
                .chain([&config.upstream_ca_key, &config.file])
                .chain(&config.host_keys)
                .chain(&config.trusted_ca_files);
            for path in paths {
                assert!(path.is_absolute(), "{path:?}");
            }
        }
        Err(error) => {
            if let ConfigError::Parse { line, .. } = &error {
                let lines = text.split('\n').count();
                assert!(*line >= 1 && *line <= lines, "{error} ({lines} lines)");
            }
            let _ = error.to_string();
        }
    }
});
