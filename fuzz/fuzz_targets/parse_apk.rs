#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wharf::testing::fuzz::parse_apk(data));
