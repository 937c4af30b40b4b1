use kask_relational::process_cache::*;

#[test]
fn a_cell_is_shared_while_held_and_forgotten_after() {
    static CACHE: ProcessCache<u32> = ProcessCache::new();
    let a = CACHE.cell("k".into());
    assert!(a.set(7).is_ok());
    let b = CACHE.cell("k".into());
    assert_eq!(b.get(), Some(&7));
    assert!(CACHE.cell("other".into()).get().is_none());
    drop((a, b));
    assert!(CACHE.cell("k".into()).get().is_none());

    let failed = CACHE.cell("f".into());
    assert!(failed.set(1).is_ok());
    CACHE.forget("f", &failed);
    let again = CACHE.cell("f".into());
    assert!(again.get().is_none(), "a forgotten cell is not handed out");
    assert_eq!(failed.get(), Some(&1), "its holders keep it");
    CACHE.forget("f", &failed);
    assert!(again.set(2).is_ok());
    assert_eq!(
        CACHE.cell("f".into()).get(),
        Some(&2),
        "an old cell forgets nothing new"
    );
}
