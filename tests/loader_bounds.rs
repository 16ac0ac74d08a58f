//! Every model loader is bounded (issue 35, items 4 and 9): GGUF metadata against the file's size
//! and fixed caps, model files by their size before a byte is read, and caught pickle panics that
//! print nothing. Each case here failed before the fix (see the comment on each test).

mod common;

#[path = "../fuzz/harness.rs"]
mod harness;

use std::io::Cursor;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::QTensor;
use candle_core::Device;
use crossrank::gguf::{convert, ConvertInput, GgufModel, Precision, KEY_FORMAT_VERSION, MAX_METADATA_NESTING, MAX_METADATA_VALUES, MAX_TENSORS};
use crossrank::local::read_hf_dir;
use crossrank::Error;

fn read_error(bytes: &[u8]) -> Error {
    match GgufModel::read("model.gguf", bytes, &Device::Cpu) {
        Ok(_) => panic!("the GGUF loaded"),
        Err(error) => error,
    }
}

fn assert_error(error: Error, code: &str, needles: &[&str]) {
    assert_eq!(error.code(), code, "wrong code for: {error}");
    for needle in needles {
        assert!(error.to_string().contains(needle), "{error} does not mention {needle:?}");
    }
}

/// The tiny model's f32 GGUF with its metadata edited (`edit` gets the converter's entries).
fn tiny_gguf_with(edit: impl FnOnce(&mut Vec<(String, Value)>)) -> Vec<u8> {
    let hf = read_hf_dir(&common::tiny_dir(), &Device::Cpu).unwrap();
    let config = String::from_utf8(hf.config_json.clone()).unwrap();
    let input = ConvertInput { config_json: &config, tokenizer: &hf.tokenizer, source: "test", max_length: None };
    let bytes = convert(&hf.weights, &input, Precision::F32).unwrap();
    let mut reader = Cursor::new(&bytes);
    let content = gguf_file::Content::read(&mut reader).unwrap();
    let tensors: Vec<(String, QTensor)> =
        content.tensor_infos.keys().map(|name| (name.clone(), content.tensor(&mut reader, name, &Device::Cpu).unwrap())).collect();
    let mut metadata: Vec<(String, Value)> = content.metadata.into_iter().collect();
    edit(&mut metadata);
    let metadata: Vec<(&str, &Value)> = metadata.iter().map(|(key, value)| (key.as_str(), value)).collect();
    let tensors: Vec<(&str, &QTensor)> = tensors.iter().map(|(name, tensor)| (name.as_str(), tensor)).collect();
    let mut out = Cursor::new(Vec::new());
    gguf_file::write(&mut out, &metadata, &tensors).unwrap();
    out.into_inner()
}

/// A GGUF v3 header (no tensors unless `tensor_count` says so) with one metadata entry `x`, an
/// array of `elements` u8 values claimed, and `body` after it.
fn claimed_u8_array(tensor_count: u64, elements: u64, body: &[u8]) -> Vec<u8> {
    let mut bytes = b"GGUF".to_vec();
    bytes.extend_from_slice(&3u32.to_le_bytes());
    bytes.extend_from_slice(&tensor_count.to_le_bytes());
    bytes.extend_from_slice(&1u64.to_le_bytes());
    bytes.extend_from_slice(&1u64.to_le_bytes());
    bytes.push(b'x');
    bytes.extend_from_slice(&9u32.to_le_bytes()); // an array
    bytes.extend_from_slice(&0u32.to_le_bytes()); // of u8
    bytes.extend_from_slice(&elements.to_le_bytes());
    bytes.extend_from_slice(body);
    bytes
}

/// Issue 35 item 4: a 121 MB file with a 100M-element u8 array loaded at 3.2 GB RSS (candle makes
/// each byte a 32-byte `Value`), a 300M one aborted. The same arrays are built here without their
/// bytes: a claim past the end of the file, and just over the fixed cap.
#[test]
fn gguf_metadata_arrays_are_bounded_by_the_file_and_a_fixed_cap() {
    // 300M elements claimed, 64 bytes present: refused by the size check, naming the key. (Before:
    // candle 0.11.1's own check refused it too, unnamed, "not a readable GGUF file (gguf: array of
    // ...)"; the bound is now crossrank's and holds whatever candle version reads the file.)
    let short = claimed_u8_array(0, 300_000_000, &[0; 64]);
    assert_error(read_error(&short), "model_format", &["metadata `x` is an array of 300000000 elements", "only 64 are left in the file"]);

    // Over the cap, every element present (1 MiB): before, this loaded (32 MiB of `Value`s; at 100M
    // elements, 3.2 GB).
    let over = tiny_gguf_with(|m| m.push(("x".into(), Value::Array(vec![Value::U8(7); MAX_METADATA_VALUES as usize + 1]))));
    assert_error(read_error(&over), "model_format", &["metadata `x`", &format!("past {MAX_METADATA_VALUES} values in all")]);
    // The cap counts every key and element of the file together: two arrays that fit alone do not.
    let half = MAX_METADATA_VALUES as usize / 2 + 1;
    let split = tiny_gguf_with(|m| {
        m.push(("x".into(), Value::Array(vec![Value::U8(7); half])));
        m.push(("y".into(), Value::Array(vec![Value::Array(vec![Value::U8(7); half])])));
    });
    assert_error(read_error(&split), "model_format", &[&format!("past {MAX_METADATA_VALUES} values in all")]);
    // Exactly at the cap (the converter's keys, the array's key and its elements) still loads.
    let at_cap = tiny_gguf_with(|m| {
        let elements = MAX_METADATA_VALUES as usize - m.len() - 1;
        m.push(("x".into(), Value::Array(vec![Value::U8(7); elements])));
    });
    let model = GgufModel::read("model.gguf", &at_cap, &Device::Cpu).unwrap();
    crossrank::Reranker::from_gguf_model(&model).unwrap();
}

/// Arrays nested past `MAX_METADATA_NESTING` and tensor counts past `MAX_TENSORS` are refused
/// before candle reads them. Before: the nested file loaded (candle follows 64 levels), and the
/// tensor count was refused only because its zero-filled names repeated.
#[test]
fn gguf_nesting_and_tensor_counts_are_capped() {
    let nested = |levels: usize| {
        let mut value = Value::Array(vec![Value::U8(1)]);
        for _ in 1..levels {
            value = Value::Array(vec![value]);
        }
        tiny_gguf_with(|m| m.push(("nested".into(), value)))
    };
    let model = GgufModel::read("model.gguf", &nested(MAX_METADATA_NESTING), &Device::Cpu).unwrap();
    assert!(model.metadata.contains_key("nested"));
    assert_error(read_error(&nested(MAX_METADATA_NESTING + 1)), "model_format", &["metadata `nested` nests arrays more than 4 deep"]);

    // A header claiming one tensor too many, in a file long enough for that many minimal entries.
    let too_many = claimed_u8_array(MAX_TENSORS + 1, 0, &vec![0; 24 * (MAX_TENSORS as usize + 1)]);
    assert_error(read_error(&too_many), "model_format", &[&format!("claims {} tensors, more than the {MAX_TENSORS}", MAX_TENSORS + 1)]);
}

/// A `crossrank.format_version` of 1 stored as u64 (or another integer type) was reported
/// "missing: not a crossrank model file"; it is the version, and a string is named as the wrong type.
#[test]
fn format_version_of_any_integer_type_is_read_and_a_wrong_type_is_named() {
    let with_version = |value: Value| {
        tiny_gguf_with(|m| {
            m.retain(|(key, _)| key != KEY_FORMAT_VERSION);
            m.push((KEY_FORMAT_VERSION.into(), value));
        })
    };
    for value in [Value::U64(1), Value::U8(1), Value::I32(1), Value::I64(1)] {
        let model = GgufModel::read("model.gguf", &with_version(value.clone()), &Device::Cpu);
        assert!(model.is_ok(), "format_version {value:?}: {:?}", model.err());
    }
    assert_error(read_error(&with_version(Value::U64(2))), "model_format", &["crossrank format version 2 is not supported"]);
    let text = read_error(&with_version(Value::String("1".into())));
    assert_error(text, "model_format", &["`crossrank.format_version` is not an unsigned integer (it is a string)"]);
}

#[cfg(feature = "cli")]
mod cli {
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output, Stdio};

    use crossrank::local::{MAX_CONFIG_JSON_BYTES, MAX_MODEL_FILE_BYTES, MAX_TOKENIZER_JSON_BYTES};

    use super::{common, harness};

    /// `crossrank ARGS` with empty stdin, its address space capped at 3 GiB so that an unbounded
    /// read ends in an allocation failure (the code before issue 35: `info /dev/zero` and
    /// `--model /dev/zero` grew to 4-8 GB), never in the machine running out.
    fn crossrank(args: &[&str]) -> Output {
        let script = format!("ulimit -v {}; exec \"$0\" \"$@\"", 3 << 20);
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(env!("CARGO_BIN_EXE_crossrank"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .unwrap()
    }

    fn assert_refused(output: &Output, needles: &[&str]) {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        for needle in needles {
            assert!(stderr.contains(needle), "{stderr:?} does not mention {needle:?}");
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("crossrank-bounds-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// A sparse file of `bytes` bytes (no disk used, nothing to read until it is read).
    fn sparse(path: &Path, bytes: u64) {
        std::fs::File::create(path).unwrap().set_len(bytes).unwrap();
    }

    /// Issue 35 item 9: `info /dev/zero` reached ~4 GB and `rerank --model /dev/zero` 4-8 GB before
    /// failing (here: "out of memory" at the 3 GiB cap). A device has no size to
    /// check: it is refused before a byte is read.
    #[test]
    fn a_device_as_model_is_refused_before_reading() {
        let output = crossrank(&["info", "/dev/zero"]);
        assert_refused(&output, &["[io]", "/dev/zero: not a regular file"]);
        let output = crossrank(&["rerank", "--model", "/dev/zero", "--query", "q"]);
        assert_refused(&output, &["[io]", "/dev/zero: not a regular file"]);
    }

    /// Model files over their bound are refused by their size (sparse files: nothing is written).
    /// Before: a 4 GiB + 1 GGUF or safetensors was read whole ("out of memory" here), an
    /// oversized config.json or tokenizer.json was read and then failed to parse, and an
    /// oversized pytorch_model.bin was reported as an unreadable checkpoint.
    #[test]
    fn oversized_model_files_are_refused_by_size() {
        let dir = temp_dir("sparse");
        std::fs::create_dir_all(&dir).unwrap();
        let gguf = dir.join("big.gguf");
        sparse(&gguf, MAX_MODEL_FILE_BYTES + 1);
        let limit = format!("larger than the {MAX_MODEL_FILE_BYTES}-byte limit for a model file");
        assert_refused(&crossrank(&["info", gguf.to_str().unwrap()]), &["[io]", &limit]);
        assert_refused(&crossrank(&["rerank", "--model", gguf.to_str().unwrap(), "--query", "q"]), &["[io]", &limit]);

        // A Hugging Face folder: each file in turn over its bound, in a copy of the tiny model.
        let cases: [(&str, &str, u64, String); 4] = [
            ("tiny", "model.safetensors", MAX_MODEL_FILE_BYTES + 1, limit.clone()),
            ("tiny-bin", "pytorch_model.bin", MAX_MODEL_FILE_BYTES + 1, limit.clone()),
            ("tiny", "config.json", MAX_CONFIG_JSON_BYTES + 1, format!("larger than the {MAX_CONFIG_JSON_BYTES}-byte limit for a config.json file")),
            (
                "tiny",
                "tokenizer.json",
                MAX_TOKENIZER_JSON_BYTES + 1,
                format!("larger than the {MAX_TOKENIZER_JSON_BYTES}-byte limit for a tokenizer.json file"),
            ),
        ];
        for (model, file, bytes, message) in cases {
            let folder = dir.join(file);
            common::copy_dir(&common::root().join("tests/models").join(model), &folder);
            sparse(&folder.join(file), bytes);
            let output = crossrank(&["rerank", "--model", folder.to_str().unwrap(), "--query", "q"]);
            assert_refused(&output, &["[io]", file, &message]);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A pickle that makes candle's reader panic (`_rebuild_tensor_v2` with one argument instead of
    /// six: it indexes the missing ones) is a `model_format` error, and stderr holds that error
    /// only. Before: the same error, after "thread 'main' panicked at .../pickle.rs".
    #[test]
    fn a_caught_pickle_panic_prints_nothing() {
        let pickle = b"\x80\x02}(X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\nK\x01\x85Ru.";
        let dir = temp_dir("pickle-panic");
        common::copy_dir(&common::root().join("tests/models/tiny-bin"), &dir);
        std::fs::write(dir.join("pytorch_model.bin"), harness::with_pickle(harness::TINY_PYTORCH_BIN, pickle)).unwrap();
        let output = crossrank(&["rerank", "--model", dir.to_str().unwrap(), "--query", "q"]);
        assert_refused(&output, &["[model_format]", "not a readable PyTorch checkpoint (its pickle is malformed"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked at"), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// The gguf_metadata fuzz target's regression inputs (fuzz/regressions/gguf_metadata/) are refused
/// for the reason their names give, not by accident (tests/fuzz_regressions.rs only checks that
/// none panics).
#[test]
fn gguf_metadata_regressions_are_refused_by_their_bound() {
    let dir = common::root().join("fuzz/regressions/gguf_metadata");
    let cases = [
        ("array-claims-300m-u8.bin", "is an array of 300000000 elements"),
        ("array-claims-4g-strings.bin", "is an array of 4294901760 elements of GGUF type 8"),
        ("array-over-cap-u8.bin", "past 1048576 values in all"),
        ("arrays-nested-five-deep.bin", "nests arrays more than 4 deep"),
    ];
    for (name, needle) in cases {
        let file = harness::gguf_metadata_file(&std::fs::read(dir.join(name)).unwrap());
        assert_error(read_error(&file), "model_format", &[needle]);
    }
    for name in ["control-format-version-u64.bin", "control-tokens-array.bin"] {
        assert_eq!(harness::gguf_metadata(&std::fs::read(dir.join(name)).unwrap()), harness::Outcome::Ok, "{name}");
    }
}
