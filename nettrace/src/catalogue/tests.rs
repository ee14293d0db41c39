//! Catalogue parsing, validation and rule-pack merging.

use super::*;

#[test]
fn embedded_catalogue_is_valid_and_large() {
    let c = Catalogue::embedded();
    assert!(c.hooks.len() >= 150, "{} hooks", c.hooks.len());
    let ip_rcv = c.hooks.iter().find(|h| h.hook.name == "ip_rcv").unwrap();
    assert_eq!(ip_rcv.path, ["ip", "ip-in"]);
    assert!(ip_rcv.hook.default && ip_rcv.hook.tp.is_none());
    let kfree = c.hooks.iter().find(|h| h.hook.name == "kfree_skb").unwrap();
    assert_eq!(kfree.hook.tracepoint(), Some(("skb", "kfree_skb")));
    assert!(kfree.hook.free);
    for group in [
        "link", "link-in", "link-out", "sched", "bridge", "vlan", "vxlan", "bonding", "ipvlan", "ovs",
    ] {
        assert!(c.names().any(|n| n == group), "{group}");
    }
}

fn err(yaml: &str) -> String {
    Catalogue::parse(yaml, "test.yaml").unwrap_err().to_string()
}

#[test]
fn every_error_path_has_a_clear_message() {
    let cases = [
        (
            "version: 2\ngroups: [{name: a, hooks: [{name: x}]}]",
            "schema version 2 is not supported",
        ),
        ("groups: []", "missing field `version`"),
        (
            "version: 1\ngroups:\n  - name: a\n    hookz: []",
            "unknown field `hookz`",
        ),
        (
            "version: 1\ngroups:\n  - name: a\n    hooks:\n      - {name: x, kind: f}",
            "line 5",
        ),
        (
            "version: 1\ngroups: [{name: a, hooks: [{name: x, rules: [{level: warn, msg: m, ret: {eq: 1, ne: 2}}]}]}]",
            "exactly one of",
        ),
        (
            "version: 1\ngroups: [{name: a, hooks: [{name: x, rules: [{level: warn, msg: m, ret: some}]}]}]",
            "is not 'any'",
        ),
        (
            "version: 1\ngroups: [{name: a, hooks: [{name: x}, {name: x}]}]",
            "name is used twice",
        ),
        (
            "version: 1\ngroups: [{name: x, hooks: [{name: x}]}]",
            "name is used twice",
        ),
        (
            "version: 1\ngroups: [{name: a, hooks: [{name: x, tp: nocolon}]}]",
            "must look like 'group:event'",
        ),
        ("version: 1\ngroups: [{name: a}]", "group 'a' is empty"),
        (
            "version: 1\ngroups: [{name: 'a b', hooks: [{name: x}]}]",
            "group name 'a b'",
        ),
        (
            "version: 1\ngroups: [{name: a, hooks: [{name: x, free: true, clone: true}]}]",
            "both free and clone",
        ),
        (
            "version: 1\ngroups: [{name: a, hooks: [{name: x, rules: [{level: fatal, msg: m}]}]}]",
            "unknown variant `fatal`",
        ),
        (
            "version: 1\ngroups: [{name: a, hooks: [{name: x, rules: [{level: warn, msg: ' '}]}]}]",
            "empty msg",
        ),
        (
            "version: 1\ngroups: [{name: a, hooks: [{name: x, rules: [{level: warn, msg: m, ret: {eq: 0}, reason: X}]}]}]",
            "use one matcher",
        ),
        (
            "version: 1\ngroups: [{name: a, hooks: [{name: x, rules: [{level: warn, msg: m, reason: X, rst_reason: Y}]}]}]",
            "use one matcher",
        ),
        (
            "version: 1\ngroups: [{name: a, hooks: [{name: x, rules: [{level: warn, msg: m, ret: {range: [5, 1]}}]}]}]",
            "start after end",
        ),
        (
            "version: 1\ngroups: [{name: a, groups: [{name: b, hooks: []}]}]",
            "group 'a > b' is empty",
        ),
        ("version: 1\ngroups: [", "test.yaml"),
    ];
    for (yaml, needle) in cases {
        let e = err(yaml);
        assert!(e.contains(needle), "{yaml:?}: {e}");
        assert!(e.starts_with("test.yaml"), "{e}");
    }
}

#[test]
fn rules_parse() {
    let c = Catalogue::parse(
        "version: 1\ngroups: [{name: a, hooks: [{name: x, rules: [{level: error, msg: dropped, adv: fix it, ret: {range: [1, 5]}}, {level: info, msg: any, ret: any}]}]}]",
        "t",
    )
    .unwrap();
    let r = &c.hooks[0].hook.rules;
    assert_eq!(r[0].level, Level::Error);
    assert_eq!(r[0].ret, Some(RetMatch::Range([1, 5])));
    assert_eq!(r[0].adv.as_deref(), Some("fix it"));
    assert_eq!(r[1].ret, Some(RetMatch::Any));
}

fn pack(yaml: &str) -> Result<Catalogue, String> {
    Catalogue::with_pack(yaml, "pack.yaml").map_err(|e| e.to_string())
}

#[test]
fn a_rule_pack_adds_rules_hooks_and_groups() {
    let base = Catalogue::embedded();
    let rules_of = |c: &Catalogue, n: &str| {
        c.hooks
            .iter()
            .find(|h| h.hook.name == n)
            .unwrap()
            .hook
            .rules
            .clone()
    };
    let merged = pack(
        "version: 1\ngroups:\n  - name: mine\n    hooks:\n      - name: kfree_skb\n        rules: [{level: warn, reason: NO_SOCKET, msg: my note}]\n  - name: tcp\n    groups: [{name: tcp-extra, hooks: [{name: tcp_my_func}]}]\n  - name: brand-new\n    hooks: [{name: my_tp, tp: 'my:tp'}]\n",
    )
    .unwrap();
    let before = rules_of(&base, "kfree_skb");
    let after = rules_of(&merged, "kfree_skb");
    assert_eq!(after.len(), before.len() + 1);
    assert_eq!(after[..before.len()], before[..]);
    assert_eq!(after.last().unwrap().msg, "my note");
    // The known hook stays where it was; the pack's group 'mine' held
    // only known hooks, so it is not created.
    let kfree = merged.hooks.iter().find(|h| h.hook.name == "kfree_skb").unwrap();
    assert_eq!(
        kfree.path,
        base.hooks
            .iter()
            .find(|h| h.hook.name == "kfree_skb")
            .unwrap()
            .path
    );
    assert!(!merged.names().any(|n| n == "mine"));
    let new = merged
        .hooks
        .iter()
        .find(|h| h.hook.name == "tcp_my_func")
        .unwrap();
    assert_eq!(new.path.last().map(String::as_str), Some("tcp-extra"));
    assert_eq!(new.path[new.path.len() - 2], "tcp");
    let tp = merged.hooks.iter().find(|h| h.hook.name == "my_tp").unwrap();
    assert_eq!(tp.path, ["brand-new"]);
    assert_eq!(merged.hooks.len(), base.hooks.len() + 2);
}

#[test]
fn rule_pack_errors_name_the_pack() {
    let cases = [
        (
            "version: 1\ngroups: [{name: life, hooks: [{name: kfree_skb, tp: 'skb:other'}]}]",
            "a pack may only add rules",
        ),
        (
            "version: 1\ngroups: [{name: x, hooks: [{name: kfree_skb, rules: [{level: warn, msg: ''}]}]}]",
            "empty msg",
        ),
        // A new hook may not take a name the catalogue gives a group.
        (
            "version: 1\ngroups: [{name: x, hooks: [{name: tcp}]}]",
            "used twice",
        ),
        ("version: 1\ngroups: [{name: x}]", "group 'x' is empty"),
        (
            "version: 1\ngroups:\n  - name: x\n    hooks: [{nme: y}]",
            "line 4",
        ),
        ("version: 3\ngroups: []", "schema version 3"),
    ];
    for (yaml, needle) in cases {
        let e = pack(yaml).unwrap_err();
        assert!(e.starts_with("pack.yaml: "), "{e}");
        assert!(e.contains(needle), "{yaml:?}: {e}");
    }
}

#[test]
fn missing_file_is_an_error() {
    let e = Catalogue::with_pack_file("/nonexistent/hooks.yaml")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("/nonexistent/hooks.yaml: cannot read"), "{e}");
}
