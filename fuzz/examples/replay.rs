//! Replays files through the fuzz targets without libFuzzer and prints each outcome:
//! `cargo run --release --example replay -- <target> <file or folder>...`
//! (the same code the fuzz targets and tests/fuzz_regressions.rs run; see harness.rs).

use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let target = args.next().expect("usage: replay <target> <file or folder>...");
    let run = crossrank_fuzz::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap_or_else(|| panic!("unknown target {target}"))
        .1;
    for arg in args {
        let path = PathBuf::from(arg);
        let mut files: Vec<PathBuf> = if path.is_dir() {
            std::fs::read_dir(&path).unwrap().map(|entry| entry.unwrap().path()).collect()
        } else {
            vec![path]
        };
        files.sort();
        for file in files {
            let data = std::fs::read(&file).unwrap();
            let start = Instant::now();
            let outcome = run(&data);
            println!("{:?}\t{:.1} ms\t{} bytes\t{}", outcome, start.elapsed().as_secs_f64() * 1e3, data.len(), file.display());
        }
    }
}
