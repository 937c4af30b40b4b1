#[test]
fn marker_names_carry_task_and_epoch() {
    assert_eq!(kask_core::marker::marker_name("7.json"), Some((7, 0)));
    assert_eq!(kask_core::marker::marker_name("7.2.json"), Some((7, 2)));
    assert_eq!(kask_core::marker::marker_name("probe.json"), None);
    assert_eq!(kask_core::marker::marker_name("7.json.tmp"), None);
}
