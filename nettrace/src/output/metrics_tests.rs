//! The metrics' exposition, as a Prometheus server reads it.

use super::*;

#[test]
fn addresses() {
    assert_eq!(parse_addr("9464").unwrap().to_string(), "127.0.0.1:9464");
    assert_eq!(parse_addr(":9464").unwrap().to_string(), "127.0.0.1:9464");
    assert_eq!(parse_addr("0.0.0.0:80").unwrap().to_string(), "0.0.0.0:80");
    assert_eq!(parse_addr("[::1]:9464").unwrap().to_string(), "[::1]:9464");
    assert!(parse_addr("localhost").unwrap_err().contains("--metrics"));
    assert!(parse_addr("70000").is_err());
}

#[test]
fn counters_encode_as_openmetrics() {
    let m = Arc::new(Metrics::default());
    let mut c = Counts::new(m.clone());
    let labels = || ("NO_SOCKET".to_string(), "tcp_v4_rcv+0x99".to_string());
    c.dropped(2, 0xffff_0099, 0, labels);
    // Cached: the labels are not asked for again.
    c.dropped(2, 0xffff_0099, 0, || unreachable!());
    c.hook(0, || "kfree_skb".into());
    c.hook(3, || "tcp_retransmit_skb".into());
    c.hook(4, || "tcp_receive_reset".into());
    c.reset(1, || "NO_SOCKET".into());
    m.lost("ring_buffer_full", 5);
    m.lost("ring_buffer_full", 7);
    // The kernel's count never goes back; a stale read adds nothing.
    m.lost("ring_buffer_full", 6);
    let text = m.encode();
    assert!(
        text.contains(r#"nettrace_packets_dropped_total{reason="NO_SOCKET",location="tcp_v4_rcv+0x99"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"nettrace_events_total{hook="kfree_skb"} 1"#),
        "{text}"
    );
    assert!(text.contains("nettrace_tcp_retransmits_total 1"), "{text}");
    assert!(
        text.contains(r#"nettrace_tcp_resets_sent_total{reason="NO_SOCKET"} 1"#),
        "{text}"
    );
    assert!(text.contains("nettrace_tcp_resets_received_total 1"), "{text}");
    assert!(
        text.contains(r#"nettrace_events_lost_total{cause="ring_buffer_full"} 7"#),
        "{text}"
    );
    assert!(text.contains("# TYPE nettrace_events_lost counter"), "{text}");
    assert!(text.contains("nettrace_attached 0"), "{text}");
    m.set_ready();
    assert!(m.encode().contains("nettrace_attached 1"));
    assert!(text.ends_with("# EOF\n"), "{text}");
}

#[test]
fn time_histograms() {
    let m = Metrics::default();
    let t = RtTask {
        upload_ns: 20_000,
        process_ns: 50_000_000,
        download_ns: None,
        srtt_us: 40,
        retrans: 2,
    };
    m.task(t, 8080, "server");
    m.rt_close(8080, "server", "closed_while_sending");
    m.rtt(3_000);
    let text = m.encode();
    assert!(
        text.contains(r#"nettrace_tcp_rt_seconds_count{phase="process",port="8080",side="server"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"nettrace_tcp_rt_seconds_sum{phase="upload",port="8080",side="server"} 0.00002"#),
        "{text}"
    );
    // Unacknowledged: no download sample at all.
    assert!(!text.contains(r#"phase="download""#), "{text}");
    assert!(text.contains("nettrace_tcp_srtt_seconds_count 2"), "{text}");
    // The unit is declared, as OpenMetrics has it.
    assert!(text.contains("# UNIT nettrace_tcp_rt_seconds seconds"), "{text}");
    // 50 ms lands in the bucket bounded by 10 µs * 2^13 = 81.92 ms, not below.
    assert!(
        text.contains(r#"nettrace_tcp_rt_retransmits_total{port="8080",side="server"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"nettrace_tcp_rt_closes_total{port="8080",side="server",end="closed_while_sending"} 1"#
        ),
        "{text}"
    );
    // 50 ms lands in the bucket bounded by 10 µs * 2^13 = 81.92 ms, not below.
    assert!(
        text.contains(
            r#"nettrace_tcp_rt_seconds_bucket{le="0.04096",phase="process",port="8080",side="server"} 0"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"nettrace_tcp_rt_seconds_bucket{le="0.08192",phase="process",port="8080",side="server"} 1"#
        ),
        "{text}"
    );
}
