//! `--json`: NDJSON, one record per line. Every record carries `"v"` (the
//! schema version below; a field's meaning never changes within a version)
//! and `"type"`. Packet fields are flat (`saddr`, `dport`, `flags`, …) so
//! `jq .reason` or `jq 'select(.dport == 443)'` work directly; addresses are
//! strings, times are nanoseconds (CLOCK_MONOTONIC, like the kernel's).

use serde_json::{Map, Value, json};

use crate::decode::{L4, Packet, tcp_flags};

/// Schema version of every record.
pub const V: u32 = 1;

/// `{"v": 1, "type": kind}`, to add fields to.
pub fn record(kind: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("v".into(), json!(V));
    m.insert("type".into(), json!(kind));
    m
}

/// One line of NDJSON.
pub fn line(m: Map<String, Value>) -> String {
    Value::Object(m).to_string()
}

/// The decoded packet's fields: `l3` (ipv4, ipv6, arp, or the ethertype),
/// `saddr`/`daddr`, `proto` and its fields (`sport`, `dport`, `seq`, `ack`,
/// `flags` for tcp; `icmp_type`, `icmp_code`, `icmp_id`, `icmp_seq`),
/// `truncated` when the header was cut short.
pub fn packet_fields(p: &Packet, m: &mut Map<String, Value>) {
    let mut put = |k: &str, v: Value| {
        m.insert(k.into(), v);
    };
    match p {
        Packet::Ip { src, dst, l4 } => {
            put("l3", json!(if src.is_ipv4() { "ipv4" } else { "ipv6" }));
            put("saddr", json!(src.to_string()));
            put("daddr", json!(dst.to_string()));
            match *l4 {
                L4::Tcp {
                    sport,
                    dport,
                    seq,
                    ack,
                    flags,
                } => {
                    put("proto", json!("tcp"));
                    put("sport", json!(sport));
                    put("dport", json!(dport));
                    put("seq", json!(seq));
                    put("ack", json!(ack));
                    put("flags", json!(tcp_flags(flags)));
                }
                L4::Udp { sport, dport } => {
                    put("proto", json!("udp"));
                    put("sport", json!(sport));
                    put("dport", json!(dport));
                }
                L4::Icmp {
                    v6,
                    ty,
                    code,
                    id,
                    seq,
                } => {
                    put("proto", json!(if v6 { "icmp6" } else { "icmp" }));
                    put("icmp_type", json!(ty));
                    put("icmp_code", json!(code));
                    put("icmp_id", json!(id));
                    put("icmp_seq", json!(seq));
                }
                L4::Other { proto } => put("proto", json!(proto)),
                L4::Truncated { proto } => {
                    put("proto", json!(proto));
                    put("truncated", json!(true));
                }
            }
        }
        Packet::Arp { op, sender, target } => {
            put("l3", json!("arp"));
            put("arp_op", json!(op));
            put("saddr", json!(sender.to_string()));
            put("daddr", json!(target.to_string()));
        }
        Packet::Other { ethertype } => put("l3", json!(format!("{ethertype:#06x}"))),
        Packet::Truncated { ethertype } => {
            put("l3", json!(format!("{ethertype:#06x}")));
            put("truncated", json!(true));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::decode;

    #[test]
    fn tcp_syn_fields() {
        let mut hdr = vec![
            0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        hdr.extend_from_slice(&[
            0xb8, 0xb2, 0x27, 0x0f, 0, 0, 0, 7, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0,
        ]);
        let mut m = record("drop");
        packet_fields(&decode(0x0800, &hdr), &mut m);
        let v: Value = serde_json::from_str(&line(m)).unwrap();
        assert_eq!(v["v"], 1);
        assert_eq!(v["type"], "drop");
        assert_eq!(v["l3"], "ipv4");
        assert_eq!(v["saddr"], "10.0.0.1");
        assert_eq!(v["daddr"], "10.0.0.2");
        assert_eq!(v["proto"], "tcp");
        assert_eq!(v["sport"], 47282);
        assert_eq!(v["dport"], 9999);
        assert_eq!(v["seq"], 7);
        assert_eq!(v["flags"], "S");
    }

    #[test]
    fn ipv6_icmp_and_unknown_link_layer() {
        let mut hdr = vec![0x60, 0, 0, 0, 0, 8, 58, 64];
        hdr.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        hdr.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        hdr.extend_from_slice(&[128, 0, 0, 0, 0, 9, 0, 3]);
        let mut m = record("event");
        packet_fields(&decode(0x86dd, &hdr), &mut m);
        assert_eq!(m["saddr"], "fd00::1");
        assert_eq!(m["proto"], "icmp6");
        assert_eq!(m["icmp_type"], 128);
        assert_eq!(m["icmp_id"], 9);
        assert_eq!(m["icmp_seq"], 3);
        let mut o = record("event");
        packet_fields(&decode(0x88cc, &[1, 2]), &mut o);
        assert_eq!(o["l3"], "0x88cc");
    }
}
