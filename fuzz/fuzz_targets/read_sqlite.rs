#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wharf::testing::fuzz::read_sqlite(data));
