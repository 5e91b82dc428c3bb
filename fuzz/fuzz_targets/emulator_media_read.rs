#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| kvs_fuzz::run("emulator_media_read", data));
