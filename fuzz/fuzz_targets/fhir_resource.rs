#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| prognostics::fuzzing::fhir_resource(data));
