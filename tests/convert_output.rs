//! `crossrank convert` writes only what it must: a regular file at `--out`, made whole beside it and
//! renamed into place; never a device, FIFO, directory or link's target, never a file of the model
//! directory, never a file planted at a temporary name; two converts to one `--out` both end whole.
#![cfg(all(feature = "cli", unix))]

mod common;

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn crossrank(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_crossrank")).args(args).stdin(Stdio::null()).output().unwrap()
}

fn convert(model: &Path, dtype: &str, out: &Path) -> Output {
    crossrank(&["convert", "--model", &model.display().to_string(), "--dtype", dtype, "--out", &out.display().to_string()])
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// An empty directory of this test's own.
fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("crossrank-convert-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(program: &str, args: &[&str]) -> bool {
    Command::new(program).args(args).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// The sha256 a successful convert reports in its "wrote … sha256 X" line.
fn reported_sha256(output: &Output) -> String {
    let text = stderr(output);
    assert!(output.status.success(), "{text}");
    text.split("sha256 ").nth(1).and_then(|rest| rest.get(..64)).unwrap_or_else(|| panic!("no sha256 in {text:?}")).to_string()
}

fn info(path: &Path) -> serde_json::Value {
    let output = crossrank(&["info", &path.display().to_string()]);
    assert!(output.status.success(), "info {}: {}", path.display(), stderr(&output));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Issue 35 item 1: `--out` onto a device, a FIFO, a directory or a symbolic link is refused by name
/// before the model is read, and the thing at `--out` is left as it was. The devices are nodes this
/// test makes itself (`mknod`, as root) for /dev/null and /dev/full, so a regression replaces them,
/// not the machine's own.
#[test]
fn convert_refuses_an_out_that_is_not_a_regular_file() {
    let dir = fresh_dir("special");
    let fifo = dir.join("fifo");
    assert!(run("mkfifo", &[&fifo.display().to_string()]));
    let directory = dir.join("directory");
    std::fs::create_dir(&directory).unwrap();
    let victim = dir.join("victim.gguf");
    std::fs::write(&victim, b"the link's target").unwrap();
    let link = dir.join("link.gguf");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let dangling = dir.join("dangling.gguf");
    std::os::unix::fs::symlink(dir.join("nowhere"), &dangling).unwrap();
    let mut cases = vec![(fifo, "is a FIFO"), (directory, "is a directory"), (link, "is a symbolic link"), (dangling, "is a symbolic link")];
    for (name, minor) in [("null", "3"), ("full", "7")] {
        let node = dir.join(name);
        if run("mknod", &[&node.display().to_string(), "c", "1", minor]) {
            cases.push((node, "is a device"));
        } else {
            eprintln!("mknod failed (not root?): the device cases are skipped");
        }
    }
    for (out, expected) in cases {
        let before = std::fs::symlink_metadata(&out).unwrap().file_type();
        let refused = convert(&common::tiny_dir(), "q8_0", &out);
        let text = stderr(&refused);
        assert!(!refused.status.success(), "{}: convert succeeded", out.display());
        assert!(text.contains("[invalid_input]") && text.contains(expected), "{}: {text}", out.display());
        let after = std::fs::symlink_metadata(&out).unwrap().file_type();
        assert_eq!(
            (after.is_fifo(), after.is_char_device(), after.is_dir(), after.is_symlink()),
            (before.is_fifo(), before.is_char_device(), before.is_dir(), before.is_symlink()),
            "{} was replaced",
            out.display()
        );
    }
    assert!(std::fs::read(&victim).unwrap() == b"the link's target", "the link's target was written");
    assert!(!dir.join("nowhere").exists(), "the dangling link's target was created");
    let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).filter(|n| n.to_string_lossy().starts_with('.')).collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Issue 35 item 2: the temporary file is created new (`O_CREAT | O_EXCL`) under a unique name, so
/// a link planted at the name convert used to use (`.NAME.crossrank-partial`) is neither followed
/// nor renamed to `--out`.
#[test]
fn convert_never_follows_a_link_at_a_temporary_name() {
    let dir = fresh_dir("planted");
    let victim = dir.join("victim");
    std::fs::write(&victim, b"not convert's to write").unwrap();
    let out = dir.join("out.gguf");
    let planted = dir.join(".out.gguf.crossrank-partial");
    std::os::unix::fs::symlink(&victim, &planted).unwrap();
    let written = convert(&common::tiny_dir(), "q8_0", &out);
    assert!(written.status.success(), "{}", stderr(&written));
    assert!(std::fs::read(&victim).unwrap() == b"not convert's to write", "the planted link was followed");
    assert!(std::fs::symlink_metadata(&out).unwrap().is_file(), "--out is not a regular file");
    assert!(std::fs::symlink_metadata(&planted).unwrap().is_symlink(), "the planted link was moved");
    assert_eq!(info(&out)["precision"], "q8_0");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A file name of 245 bytes is valid (most filesystems allow 255), so it is a valid `--out`: the
/// temporary name beside it is short, not `--out`'s name plus a suffix.
#[test]
fn convert_writes_an_out_with_a_245_byte_name() {
    let dir = fresh_dir("long");
    let out = dir.join(format!("{}.gguf", "m".repeat(240)));
    assert_eq!(out.file_name().unwrap().len(), 245);
    let written = convert(&common::tiny_dir(), "q8_0", &out);
    assert!(written.status.success(), "{}", stderr(&written));
    assert_eq!(info(&out)["precision"], "q8_0");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Issue 35's "--out onto a file of the source folder": every path inside the model directory is
/// refused, not only the files convert reads (here `special_tokens_map.json`, a new file, and a
/// file of a subdirectory), and by any spelling of the path.
#[test]
fn convert_refuses_any_out_inside_the_model_directory() {
    let dir = fresh_dir("inside");
    let model = dir.join("model");
    common::copy_dir(&common::tiny_dir(), &model);
    std::fs::write(model.join("special_tokens_map.json"), b"{}").unwrap();
    std::fs::create_dir(model.join("onnx")).unwrap();
    std::fs::write(model.join("onnx/model.onnx"), b"onnx").unwrap();
    let targets = [
        model.join("special_tokens_map.json"),
        model.join("model.safetensors"),
        model.join("config.json"),
        model.join("new.gguf"),
        model.join("onnx/model.onnx"),
        dir.join("model/onnx/../vocab.txt"),
    ];
    for out in targets {
        let before = std::fs::read(&out).ok();
        let refused = convert(&model, "q8_0", &out);
        let text = stderr(&refused);
        assert!(!refused.status.success(), "{}: convert succeeded", out.display());
        assert!(text.contains("[invalid_input]") && text.contains("is inside the model directory"), "{}: {text}", out.display());
        assert!(std::fs::read(&out).ok() == before, "{} was changed", out.display());
    }
    // The model given by another spelling (a trailing `/.`) is the same directory.
    let refused = convert(&model.join("."), "q8_0", &model.join("new.gguf"));
    assert!(stderr(&refused).contains("is inside the model directory"), "{}", stderr(&refused));
    assert!(!model.join("new.gguf").exists());
    // Beside the model directory is fine.
    assert!(convert(&model, "q8_0", &dir.join("model.gguf")).status.success());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The temporary files convert leaves beside `out` (only a killed run leaves one).
fn partial_files(dir: &Path, out: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p != out).collect()
}

/// Waits until some file beside `out` (convert's temporary file) holds `at_least` bytes.
fn wait_for_partial(dir: &Path, out: &Path, at_least: u64) {
    let started = std::time::Instant::now();
    while !partial_files(dir, out).iter().any(|p| std::fs::metadata(p).is_ok_and(|m| m.len() >= at_least)) {
        assert!(started.elapsed().as_secs() < 120, "no partial file grew beside {}", out.display());
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

fn spawn_convert(model: &Path, dtype: &str, out: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_crossrank"))
        .args(["convert", "--model", &model.display().to_string(), "--dtype", dtype, "--out", &out.display().to_string()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Killed while the output is being written (the 77 MB MiniLM-L-4 f32: the kill comes once the
/// partial file beside --out holds a few MB), the old file is intact; left alone, the new one
/// replaces it whole.
#[test]
fn convert_killed_mid_write_leaves_the_old_file() {
    let dir = fresh_dir("killed");
    let out = dir.join("out.gguf");
    let old = b"the previous model file".to_vec();
    std::fs::write(&out, &old).unwrap();
    let mut child = spawn_convert(&common::minilm_dir(), "f32", &out);
    wait_for_partial(&dir, &out, 4 << 20);
    child.kill().unwrap(); // SIGKILL, mid-write
    child.wait().unwrap();
    assert!(std::fs::read(&out).unwrap() == old, "killed mid-write, the old file was damaged");
    let left = partial_files(&dir, &out);
    assert_eq!(left.len(), 1, "{left:?}");
    // The next run replaces the output whole and removes nothing but its own temporary file.
    let written = spawn_convert(&common::minilm_dir(), "f32", &out).wait_with_output().unwrap();
    let now = std::fs::read(&out).unwrap();
    assert_eq!(hex_sha256(&now), reported_sha256(&written));
    assert!(crossrank::Reranker::from_gguf(&now, &candle_core::Device::Cpu).is_ok(), "{} bytes at --out do not load", now.len());
    assert_eq!(partial_files(&dir, &out), left, "a good run left a temporary file");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Issue 35 item 3, made certain: convert A (MiniLM-L-4 f32) is stopped mid-write, convert B
/// (q8_0) writes the same `--out` and finishes, then A resumes. With one shared temporary name, B
/// truncated and renamed the file A was still writing, so A wrote its tail into B's output and
/// then failed with "No such file or directory". Now both succeed, each wrote one whole file, and
/// `--out` holds exactly the one the last to finish (A) reports.
#[test]
fn converts_racing_to_one_out_each_end_whole() {
    let dir = fresh_dir("race");
    let out = dir.join("out.gguf");
    let a = spawn_convert(&common::minilm_dir(), "f32", &out);
    wait_for_partial(&dir, &out, 4 << 20);
    assert!(run("kill", &["-STOP", &a.id().to_string()]));
    let b = convert(&common::minilm_dir(), "q8_0", &out);
    assert!(run("kill", &["-CONT", &a.id().to_string()]));
    let a = a.wait_with_output().unwrap();
    let (a_sha, b_sha) = (reported_sha256(&a), reported_sha256(&b));
    assert_ne!(a_sha, b_sha);
    assert_eq!(hex_sha256(&std::fs::read(&out).unwrap()), a_sha, "--out is not the file the last convert wrote");
    assert_eq!(info(&out)["precision"], "f32");
    assert!(partial_files(&dir, &out).is_empty(), "{:?}", partial_files(&dir, &out));

    // Started together, round after round: both succeed and --out is one of the two whole files.
    for round in 0..8 {
        let (f32_run, q8_run) = (spawn_convert(&common::tiny_dir(), "f32", &out), spawn_convert(&common::tiny_dir(), "q8_0", &out));
        let (f32_run, q8_run) = (f32_run.wait_with_output().unwrap(), q8_run.wait_with_output().unwrap());
        let reported = [(reported_sha256(&f32_run), "f32"), (reported_sha256(&q8_run), "q8_0")];
        let sha = hex_sha256(&std::fs::read(&out).unwrap());
        let precision = reported.iter().find(|(s, _)| *s == sha).map(|(_, p)| *p);
        assert!(precision.is_some(), "round {round}: --out is neither convert's file");
        assert_eq!(info(&out)["precision"].as_str(), precision, "round {round}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
