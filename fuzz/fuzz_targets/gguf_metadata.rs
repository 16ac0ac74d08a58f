#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    crossrank_fuzz::gguf_metadata(data);
});
