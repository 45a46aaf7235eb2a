#![no_main]
// The target's body and its invariants live in the library: m2m_operator_testkit::fuzzing::token_request.
libfuzzer_sys::fuzz_target!(|data: &[u8]| m2m_operator_testkit::fuzzing::token_request(data));
