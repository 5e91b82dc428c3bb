#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| kvs_fuzz::run("emulator_sigv4", data));
