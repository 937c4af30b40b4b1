use kask_core::history::logs::*;

#[test]
fn a_long_log_keeps_its_start_and_its_end() {
    let mut k = Kept::default();
    append(&mut k, &vec![b'a'; HEAD + 10]);
    append(&mut k, &vec![b'b'; TAIL]);
    append(&mut k, b"the error");
    let text = render(&k);
    assert!(text.starts_with(&"a".repeat(HEAD)), "head kept");
    assert!(
        text.contains("[... 19 bytes of log left out ...]"),
        "gap said"
    );
    assert!(text.ends_with("the error"));
    assert_eq!(k.tail.len(), TAIL);
}
