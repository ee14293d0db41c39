//! `--json`: NDJSON, one record per line. Every record carries `"v"` (the
//! schema version below; a field's meaning never changes within a version)
//! and `"type"`, then its own fields in the order its type declares them.
//! Packet fields are flat (`saddr`, `dport`, `flags`, …) so `jq .reason` or
//! `jq 'select(.dport == 443)'` work directly; addresses are strings, times
//! are nanoseconds (CLOCK_MONOTONIC, like the kernel's).

use std::io::{self, Write};

use serde::{Serialize, Serializer, ser::SerializeMap as _};

use super::record::Record;
use crate::decode::{L4, Packet, tcp_flags};

/// Schema version of every record.
pub const V: u32 = 1;

/// `{"v": 1, "type": kind, fields…}`
#[derive(Serialize)]
struct Tagged<'a, R> {
    v: u32,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    record: &'a R,
}

/// Writes `r` as one line of NDJSON.
pub fn write<R: Record>(w: &mut dyn Write, r: &R) -> io::Result<()> {
    let tagged = Tagged {
        v: V,
        kind: r.kind(),
        record: r,
    };
    serde_json::to_writer(&mut *w, &tagged)?;
    w.write_all(b"\n")
}

/// A string holding `{:x}` of a kernel address (`skb`, `sk`).
pub fn hex<S: Serializer>(addr: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{addr:x}"))
}

/// The decoded packet's fields, to `#[serde(flatten)]` into a record:
/// `l3` (ipv4, ipv6, arp, or the ethertype), `saddr`/`daddr`, `proto` and
/// its fields (`sport`, `dport`, `seq`, `ack`, `flags` for tcp;
/// `icmp_type`, `icmp_code`, `icmp_id`, `icmp_seq`), `truncated` when the
/// header was cut short.
pub struct PacketFields(pub Packet);

impl Serialize for PacketFields {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        match &self.0 {
            Packet::Ip { src, dst, l4 } => {
                m.serialize_entry("l3", if src.is_ipv4() { "ipv4" } else { "ipv6" })?;
                m.serialize_entry("saddr", &src.to_string())?;
                m.serialize_entry("daddr", &dst.to_string())?;
                match *l4 {
                    L4::Tcp {
                        sport,
                        dport,
                        seq,
                        ack,
                        flags,
                    } => {
                        m.serialize_entry("proto", "tcp")?;
                        m.serialize_entry("sport", &sport)?;
                        m.serialize_entry("dport", &dport)?;
                        m.serialize_entry("seq", &seq)?;
                        m.serialize_entry("ack", &ack)?;
                        m.serialize_entry("flags", &tcp_flags(flags))?;
                    }
                    L4::Udp { sport, dport } => {
                        m.serialize_entry("proto", "udp")?;
                        m.serialize_entry("sport", &sport)?;
                        m.serialize_entry("dport", &dport)?;
                    }
                    L4::Icmp {
                        v6,
                        ty,
                        code,
                        id,
                        seq,
                    } => {
                        m.serialize_entry("proto", if v6 { "icmp6" } else { "icmp" })?;
                        m.serialize_entry("icmp_type", &ty)?;
                        m.serialize_entry("icmp_code", &code)?;
                        m.serialize_entry("icmp_id", &id)?;
                        m.serialize_entry("icmp_seq", &seq)?;
                    }
                    L4::Other { proto } => m.serialize_entry("proto", &proto)?,
                    L4::Truncated { proto } => {
                        m.serialize_entry("proto", &proto)?;
                        m.serialize_entry("truncated", &true)?;
                    }
                }
            }
            Packet::Arp { op, sender, target } => {
                m.serialize_entry("l3", "arp")?;
                m.serialize_entry("arp_op", op)?;
                m.serialize_entry("saddr", &sender.to_string())?;
                m.serialize_entry("daddr", &target.to_string())?;
            }
            Packet::Other { ethertype } => m.serialize_entry("l3", &format!("{ethertype:#06x}"))?,
            Packet::Truncated { ethertype } => {
                m.serialize_entry("l3", &format!("{ethertype:#06x}"))?;
                m.serialize_entry("truncated", &true)?;
            }
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::decode::decode;

    /// The fields as a `drop` record would carry them.
    fn fields(ethertype: u16, hdr: &[u8]) -> Value {
        #[derive(Serialize)]
        struct Drop {
            #[serde(flatten)]
            packet: PacketFields,
        }
        impl Record for Drop {
            fn kind(&self) -> &'static str {
                "drop"
            }
            fn text(&self, _: &mut dyn Write) -> io::Result<()> {
                Ok(())
            }
        }
        let p = decode(ethertype, hdr);
        let mut out = Vec::new();
        write(
            &mut out,
            &Drop {
                packet: PacketFields(p),
            },
        )
        .unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn tcp_syn_fields() {
        let mut hdr = vec![
            0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        hdr.extend_from_slice(&[
            0xb8, 0xb2, 0x27, 0x0f, 0, 0, 0, 7, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0,
        ]);
        let v = fields(0x0800, &hdr);
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
        let m = fields(0x86dd, &hdr);
        assert_eq!(m["saddr"], "fd00::1");
        assert_eq!(m["proto"], "icmp6");
        assert_eq!(m["icmp_type"], 128);
        assert_eq!(m["icmp_id"], 9);
        assert_eq!(m["icmp_seq"], 3);
        let o = fields(0x88cc, &[1, 2]);
        assert_eq!(o["l3"], "0x88cc");
    }
}
