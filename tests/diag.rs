//! Root integration tests for `--diag`: real drops in namespaces this test
//! creates, diagnosed from the catalogue's rules.

use std::process::Command;

use crate::util::{self, Pair, Tracer, start_timeout};

/// The hooks these diagnoses need (the path in, and the packet's end):
/// a small set keeps start-up short where every hook is an fentry program
/// loaded under emulation (the VM tier).
const HOOKS: &str = "netif_receive_skb,life";

/// The lines from `ANALYSIS RESULT` to `analysis finished!`.
fn analysis(lines: &[String]) -> Vec<String> {
    let start = lines
        .iter()
        .position(|l| l.contains("ANALYSIS RESULT"))
        .unwrap_or_else(|| panic!("no analysis: {lines:#?}"));
    let end = lines
        .iter()
        .position(|l| l == "analysis finished!")
        .unwrap_or_else(|| panic!("unfinished: {lines:#?}"));
    lines[start..=end].to_vec()
}

/// Installs `rule` (iptables arguments) in `ns` and checks it is there.
fn iptables(net: &Pair, ns: &str, rule: &[&str]) {
    net.exec(ns, &[&["iptables"][..], rule].concat());
    let listed = Command::new("ip")
        .args(["netns", "exec", ns, "iptables", "-S", "INPUT"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("-j DROP"),
        "rule not installed"
    );
}

/// Checks the diagnosis of a packet an iptables rule on INPUT dropped, with
/// `--hooks`: both findings, the blamed hook function, the hook point note,
/// and that tracing ended by itself.
fn assert_netfilter_diagnosis(lines: &[String]) {
    let a = analysis(lines);
    let text = a.join("\n");
    assert!(
        a[1].starts_with("[1] ERROR happens in kfree_skb(life):"),
        "{text}"
    );
    assert!(text.contains("        packet is dropped by kernel"), "{text}");
    assert!(
        text.contains("        packet is dropped by netfilter (NF_DROP)"),
        "{text}"
    );
    // Kernels without drop reasons: the free inside nf_hook_slow tells
    // (the analysis names the reason it concluded).
    assert!(
        text.contains("    drop reason:\n        NETFILTER_DROP"),
        "{text}"
    );
    assert!(text.contains("    location:\n        nf"), "{text}");
    assert!(
        text.contains("    fix advice:\n        check your netfilter rules"),
        "{text}"
    );
    // The hook function that holds the filter table's INPUT chain, read from
    // the namespace at the drop: nftables' (iptables-nft) or the legacy one.
    let blamed = a
        .iter()
        .position(|l| l == "    following hook functions are blamed:")
        .unwrap_or_else(|| panic!("nothing blamed: {text}"));
    let functions: Vec<&str> = a[blamed + 1..]
        .iter()
        .take_while(|l| !l.is_empty())
        .map(|l| l.trim())
        .collect();
    assert!(
        functions
            .iter()
            .any(|f| f.starts_with("nft_do_chain") || *f == "iptable_filter_hook"),
        "{functions:?}"
    );
    // The dropping event carries the notes on its line.
    let kfree = lines.iter().find(|l| l.contains("[kfree_skb")).unwrap();
    assert!(
        kfree.ends_with(
            "*ipv4 in chain: LOCAL_IN* *packet is dropped by kernel* *packet is dropped by netfilter (NF_DROP)*"
        ),
        "{kfree}"
    );
    assert_eq!(lines.last().map(String::as_str), Some("end trace..."));
}

/// A ping from `a` that an iptables DROP on `b`'s INPUT drops, traced with
/// `--diag --hooks` and `extra` flags until tracing ends by itself (no -c).
fn diagnosed_icmp_drop(extra: &[&str]) -> (Pair, Tracer) {
    let net = Pair::new();
    iptables(
        &net,
        &net.b,
        &["-A", "INPUT", "-p", "icmp", "-s", &net.a4, "-j", "DROP"],
    );
    let mut args = vec![
        "-t", HOOKS, "--diag", "--hooks", "-p", "icmp", "-s", &net.a4, "-d", &net.b4,
    ];
    args.extend_from_slice(extra);
    let mut t = Tracer::start(&args);
    net.exec(&net.a, &["ping", "-c", "1", "-W", "1", &net.b4]);
    assert!(t.wait_exit(start_timeout()).success(), "{}", t.stderr());
    (net, t)
}

#[test]
fn iptables_icmp_drop_is_diagnosed_with_blamed_hooks_and_tracing_stops() {
    let (_net, t) = diagnosed_icmp_drop(&[]);
    assert_netfilter_diagnosis(&t.lines());
}

#[test]
fn iptables_tcp_drop_is_diagnosed_with_blamed_hooks() {
    let net = Pair::new();
    iptables(
        &net,
        &net.b,
        &["-A", "INPUT", "-p", "tcp", "--dport", "9977", "-j", "DROP"],
    );
    let mut t = Tracer::start(&["-t", HOOKS, "--diag", "--hooks", "-p", "tcp", "--port", "9977"]);
    net.syn(9977);
    assert!(t.wait_exit(start_timeout()).success(), "{}", t.stderr());
    let lines = t.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("TCP: ") && l.contains(":9977") && l.contains("flags:S")),
        "{lines:#?}"
    );
    assert_netfilter_diagnosis(&lines);
}

/// Does this kernel's `tcp:tcp_send_reset` say why (6.10+)?
fn reset_reasons_reported() -> bool {
    std::fs::read_to_string("/sys/kernel/tracing/events/tcp/tcp_send_reset/format")
        .is_ok_and(|f| f.contains("enum sk_rst_reason reason"))
}

#[test]
fn syn_to_closed_port_says_port_not_listened_and_why_a_reset_was_sent() {
    let net = Pair::new();
    let mut t = Tracer::start(&[
        "-t",
        &format!("{HOOKS},tcp_send_reset"),
        "--diag",
        "--diag-quiet",
        "-p",
        "tcp",
        "-d",
        &net.b4,
        "-P",
        "9988",
    ]);
    net.syn(9988);
    assert!(t.wait_exit(start_timeout()).success(), "{}", t.stderr());
    let text = analysis(&t.lines()).join("\n");
    assert!(text.contains("packet is dropped by kernel"), "{text}");
    if !util::drop_reasons_reported() {
        // Why is not reported before 5.17; where is.
        assert!(text.contains("    location:\n        tcp_v4_rcv+0x"), "{text}");
        return;
    }
    assert!(text.contains("port is not listened"), "{text}");
    assert!(text.contains("NO_SOCKET"), "{text}");
    assert!(
        text.contains("fix advice:\n        check that the service is running"),
        "{text}"
    );
    if reset_reasons_reported() {
        assert!(
            text.contains(
                "WARN happens in tcp_send_reset(tcp):\n        TCP reset sent: port is not listened (no socket)\n    reset reason:\n        NO_SOCKET"
            ),
            "{text}"
        );
    }
}

#[test]
fn healthy_packets_print_nothing_when_quiet_and_notes_otherwise() {
    let net = Pair::new();
    let mut quiet = Tracer::start(&[
        "-t",
        HOOKS,
        "--diag",
        "--diag-quiet",
        "-p",
        "icmp",
        "-s",
        &net.a4,
        "-d",
        &net.b4,
    ]);
    let mut loud = Tracer::start(&[
        "-t",
        HOOKS,
        "--diag",
        "--diag-keep",
        "-p",
        "icmp",
        "-s",
        &net.a4,
        "-d",
        &net.b4,
        "-c",
        "1",
    ]);
    net.exec(&net.a, &["ping", "-c", "2", "-i", "0.2", "-W", "1", &net.b4]);
    assert!(loud.wait_exit(start_timeout()).success(), "{}", loud.stderr());
    let loud_lines = loud.lines();
    // A normal free is noted as such, and no analysis is printed.
    assert!(
        loud_lines
            .iter()
            .any(|l| l.contains("[consume_skb") && l.ends_with("*packet is freed (normally)*")),
        "{loud_lines:#?}"
    );
    assert!(
        !loud_lines.iter().any(|l| l.contains("ANALYSIS")),
        "{loud_lines:#?}"
    );
    quiet.signal(libc::SIGINT);
    assert!(quiet.wait_exit(start_timeout()).success());
    assert_eq!(quiet.lines(), ["begin trace...", "end trace..."]);
}

/// Runs a ping from `a` to `b` through `iptables` rules (ACCEPT on a's
/// OUTPUT, DROP on b's INPUT) with the netfilter functions hooked.
/// Whether netfilter's module functions (`nft_do_chain`, `ipt_do_table`) can
/// be hooked: their modules need BTF of their own (5.11+).
fn module_functions() -> bool {
    std::path::Path::new("/sys/kernel/btf/nf_tables").exists()
}

fn ping_through_netfilter(iptables: &str) -> Vec<String> {
    let net = Pair::new();
    net.exec(&net.a, &[iptables, "-A", "OUTPUT", "-p", "icmp", "-j", "ACCEPT"]);
    net.exec(
        &net.b,
        &[iptables, "-A", "INPUT", "-p", "icmp", "-s", &net.a4, "-j", "DROP"],
    );
    let mut t = Tracer::start(&[
        "-t",
        if module_functions() {
            "nf_hook_slow,nft_do_chain,ipt_do_table,life"
        } else {
            "nf_hook_slow,life"
        },
        "--diag",
        "-p",
        "icmp",
        "-s",
        &net.a4,
        "-d",
        &net.b4,
    ]);
    net.exec(&net.a, &["ping", "-c", "1", "-W", "1", &net.b4]);
    assert!(t.wait_exit(start_timeout()).success(), "{}", t.stderr());
    t.lines()
}

fn line_of<'a>(lines: &'a [String], hook: &str, note: &str) -> &'a String {
    lines
        .iter()
        .find(|l| l.contains(&format!("[{hook}")) && l.contains(note))
        .unwrap_or_else(|| panic!("no {hook} line with {note}: {lines:#?}"))
}

/// Needs function hooks (the VM tier's kernel): the hook point from
/// `nf_hook_slow`'s state, the table and chain from `nft_do_chain`
/// (iptables-nft) and `ipt_do_table` (iptables-legacy).
#[test]
fn netfilter_functions_name_hook_point_table_and_chain() {
    if util::skip_without_function_hooks() {
        return;
    }
    // The drop as the kernel reports it, or (no drop reasons) as diagnosed
    // from where it happened.
    let dropped = if util::drop_reasons_reported() {
        "reason: NETFILTER_DROP"
    } else {
        "*packet is dropped by netfilter (NF_DROP)*"
    };
    let nft = ping_through_netfilter("iptables-nft");
    // Accepted on the way out (fexit: the packet lives on).
    line_of(&nft, "nf_hook_slow", "*ipv4 in chain: LOCAL_OUT*");
    line_of(&nft, "kfree_skb", dropped);
    let legacy = ping_through_netfilter("iptables-legacy");
    line_of(&legacy, "kfree_skb", dropped);
    if !module_functions() {
        eprintln!("nft_do_chain and ipt_do_table not checked: netfilter's modules have no BTF here");
        return;
    }
    line_of(&nft, "nft_do_chain", "*nftables table:filter, chain:OUTPUT*");
    line_of(&nft, "nft_do_chain", "*nftables table:filter, chain:INPUT*");
    line_of(&legacy, "ipt_do_table", "*iptables table:filter, chain:OUTPUT*");
    line_of(&legacy, "ipt_do_table", "*iptables table:filter, chain:INPUT*");
}

#[test]
fn json_diagnosis_is_an_analysis_record() {
    let (net, t) = diagnosed_icmp_drop(&["--json"]);
    let records = t.json_records();
    let packet = records
        .iter()
        .find(|r| {
            r["type"] == "packet"
                && r["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| e["hook"] == "kfree_skb")
        })
        .expect("the dropped packet");
    let kfree = packet["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["hook"] == "kfree_skb")
        .unwrap();
    if util::drop_reasons_reported() {
        assert_eq!(kfree["reason"], "NETFILTER_DROP");
    }
    assert_eq!(kfree["saddr"], net.a4.as_str());
    assert!(
        kfree["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "packet is dropped by netfilter (NF_DROP)"),
        "{kfree}"
    );
    let analysis = records
        .iter()
        .find(|r| r["type"] == "analysis")
        .expect("analysis record");
    let nf = analysis["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["msg"] == "packet is dropped by netfilter (NF_DROP)")
        .expect("netfilter finding");
    assert_eq!(nf["level"], "error");
    assert_eq!(nf["reason"], "NETFILTER_DROP");
    assert!(!nf["blamed"].as_array().unwrap().is_empty(), "{nf}");
    assert_eq!(records.last().unwrap()["type"], "end");
}
