#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wharf::testing::fuzz::decode_object(data));
