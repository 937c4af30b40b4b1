use kask_relational::cut::*;

#[test]
fn key_filters_are_on_unless_turned_off_and_a_wrong_value_is_an_error() {
    assert!(key_filters_named(None).expect("on"));
    assert!(key_filters_named(Some("on")).expect("on"));
    assert!(!key_filters_named(Some("off")).expect("off"));
    let e = key_filters_named(Some("no")).expect_err("refused");
    assert!(e.to_string().contains("KASK_KEY_FILTERS is \"no\""), "{e}");
}
