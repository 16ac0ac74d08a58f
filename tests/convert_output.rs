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
