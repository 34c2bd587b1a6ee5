#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tgs_fuzz::redactor(data));
