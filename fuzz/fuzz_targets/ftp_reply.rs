#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| readyloop_fuzz::targets::ftp_reply::run(data));
