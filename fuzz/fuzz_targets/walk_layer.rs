#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wharf::testing::fuzz::walk_layer(data));
