//! Replays the fuzzers' regression inputs (fuzz/regressions/<target>/*) through the same code the
//! fuzz targets run (fuzz/harness.rs), without cargo-fuzz or libFuzzer: every input must come back
//! as Ok or as a crossrank::Error with a known code, never as a panic or an abort.
//! See HARDENING.md for the targets and how to add an input.

#[path = "../fuzz/harness.rs"]
mod harness;

use std::path::Path;

#[test]
fn fuzz_regression_inputs_are_rejected_cleanly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let ran = harness::run_regressions(&dir);
    assert!(ran > 0, "no regression inputs under {}", dir.display());
}

#[test]
fn fuzz_seed_models_still_load() {
    // The harness's fixed models must load, or every fuzzed input would be rejected for nothing.
    assert_eq!(harness::pair_tokenizer(b"\x00\x02\x00\x10what causes scurvy\x00Vitamin C deficiency."), harness::Outcome::Ok);
    assert_eq!(harness::safetensors_loader(harness::TINY_SAFETENSORS), harness::Outcome::Ok);
    assert_eq!(harness::config_parser(harness::TINY_CONFIG), harness::Outcome::Ok);
    assert_eq!(harness::pytorch_loader(harness::TINY_PYTORCH_BIN), harness::Outcome::Ok);
    // pytorch_loader's pickle mode: the tiny checkpoint's own pickle, put back into a zip the
    // harness writes, loads as the original does.
    let entries = harness::stored_zip_entries(harness::TINY_PYTORCH_BIN).unwrap();
    let pickle = &entries.iter().find(|(name, _)| name.ends_with(b"/data.pkl")).unwrap().1;
    assert_eq!(harness::stored_zip_entries(&harness::stored_zip(&entries)).unwrap(), entries);
    assert_eq!(harness::pytorch_loader(pickle), harness::Outcome::Ok);
}
