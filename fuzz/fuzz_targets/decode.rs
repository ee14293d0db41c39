//! The packet decoder on arbitrary header bytes: the eBPF side copies up to
//! `PKT_HDR_LEN` bytes from wherever `skb->network_header` points, so any
//! bytes can arrive. Decoding and printing must never panic.
#![no_main]

// nettrace is a binary crate; its decoder is self-contained (std and
// nettrace-common only), so the fuzz target compiles the same file.
#[allow(dead_code)]
#[path = "../../nettrace/src/decode.rs"]
mod decode;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let ethertype = u16::from_be_bytes([data[0], data[1]]);
    let hdr = &data[2..data.len().min(2 + nettrace_common::PKT_HDR_LEN)];
    let _ = decode::decode(ethertype, hdr).to_string();
});
