//! The rule-pack parser (`--rules FILE`) on arbitrary text: every input must
//! end in a catalogue or an error, never a panic (the merge into the
//! embedded catalogue included).
#![no_main]

// nettrace is a binary crate; the catalogue module is self-contained
// (serde, serde_yaml, strsim, thiserror), so the fuzz target compiles it.
#[allow(dead_code)]
#[path = "../../nettrace/src/catalogue/mod.rs"]
mod catalogue;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = catalogue::Catalogue::with_pack(text, "fuzz") {
        // Whatever merged must select like the real one does.
        let _ = catalogue::select(&c, Some("all"), "-t");
    }
    let _ = catalogue::Catalogue::parse(text, "fuzz");
});
