//! What compressing the recorded bytes would save and cost: the workload
//! files through the reference command-line codecs (`zstd -1`, `lz4 -1`,
//! one thread each), if installed. portcullis stores stream bytes
//! uncompressed; this is the measurement behind that choice, rerun with
//! the throughput figures it is weighed against.

use std::process::{Command, Stdio};

use crate::lab::Lab;
use crate::procs::{children_cpu_seconds, drain};
use crate::report::Report;
use crate::workload::Workload;

const CODECS: [(&str, &str, &[&str]); 2] = [
    ("zstd -1", "zstd", &["-1", "-T1", "-q", "-c"]),
    ("lz4 -1", "lz4", &["-1", "-q", "-c"]),
];

pub fn run(lab: &Lab, report: &mut Report) {
    report.subsection("Compressing the recorded bytes (a lever weighed, not taken)");
    let mut rows = Vec::new();
    for workload in Workload::ALL {
        let file = workload.file(lab.dir());
        let Ok(meta) = std::fs::metadata(&file) else {
            continue;
        };
        let gib = meta.len() as f64 / (1u64 << 30) as f64;
        for (name, program, args) in CODECS {
            match compress(program, args, &file) {
                Ok((out_bytes, cpu)) => rows.push(vec![
                    workload.name().to_string(),
                    name.to_string(),
                    format!("{:.2}", meta.len() as f64 / out_bytes.max(1) as f64),
                    format!("{:.0}", out_bytes as f64 / (1u64 << 20) as f64 / gib),
                    format!("{:.2}", cpu / gib),
                ]),
                Err(e) => report.note(&format!("{name}: {e}")),
            }
        }
    }
    report.table(
        &[
            "workload",
            "codec",
            "ratio",
            "store MiB per GiB",
            "CPU s per GiB",
        ],
        &rows,
    );
    report.note(
        "Set against the recording CPU above (writer and checkpointer): compressing \
         would add the codec's CPU to every recorded GiB, to save disk.",
    );
}

/// Runs `program args FILE`, counting its output; returns the output size
/// and the CPU seconds it took.
fn compress(program: &str, args: &[&str], file: &std::path::Path) -> Result<(u64, f64), String> {
    let before = children_cpu_seconds();
    let mut child = Command::new(program)
        .args(args)
        .arg(file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{program}: {e} (not installed?)"))?;
    let out = child.stdout.take().map(drain).unwrap_or(0);
    let status = child.wait().map_err(|e| format!("{program}: {e}"))?;
    if !status.success() {
        return Err(format!("{program} failed: {status}"));
    }
    Ok((out, children_cpu_seconds() - before))
}
