#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ipvs_fuzz_targets::server_answers(data));
