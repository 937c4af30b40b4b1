use datafusion::common::{Column, NullEquality};
use datafusion::logical_expr::Expr;
use kask_relational::estimate::Estimate;
use kask_relational::join_order::*;

fn sized(size: f64, base: f64) -> Estimate {
    Estimate { size, base }
}

fn edge(a: usize, b: usize, distinct: f64) -> Edge {
    Edge {
        tables: (a, b),
        distinct,
    }
}

/// A fact table (0) keyed to a medium table (1) keyed to a tiny filtered one (2): the greedy
/// order starts from the tiny one and builds the smaller side of every join.
#[test]
fn the_order_starts_where_the_intermediate_results_stay_smallest() {
    let sizes = [sized(1e9, 1e9), sized(1e6, 1e6), sized(10.0, 1000.0)];
    let edges = [edge(0, 1, 1e6), edge(1, 2, 1000.0)];
    let (_, from_fact) = greedy_from(0, &sizes, &edges).expect("connected");
    let (_, from_tiny) = greedy_from(2, &sizes, &edges).expect("connected");
    let cost = |s| greedy_from(s, &sizes, &edges).expect("connected").0;
    assert!(cost(2) < cost(0), "{} {}", cost(2), cost(0));
    let t = |i| Box::new(Shape::Table(i));
    assert_eq!(
        from_tiny,
        Shape::Join(Box::new(Shape::Join(t(2), t(1))), t(0)),
        "tiny ⋈ mid, built on the left, then the fact table"
    );
    assert_ne!(from_fact, from_tiny);
}

#[test]
fn tables_no_key_connects_are_left_in_their_order() {
    let sizes = [sized(1e9, 1e9), sized(1e6, 1e6), sized(10.0, 1000.0)];
    assert_eq!(greedy_from(0, &sizes, &[edge(0, 1, 1e6)]), None);
}

/// `c.nationkey = s.nationkey AND s.nationkey = n.nationkey`: customers and suppliers share
/// no more keys than there are nations, however many of each there are.
#[test]
fn keys_made_equal_to_a_small_tables_keys_are_as_few_as_its_rows() {
    let table = |name: &str, columns: &[&str]| {
        crate::group_keys::table(name, columns)
            .and_then(|b| b.build())
            .expect("a scan")
    };
    let key = |t: &str, c: &str| Expr::Column(Column::new(Some(t), c));
    let tree = Tree {
        tables: vec![
            table("c", &["custkey", "nationkey"]),
            table("s", &["suppkey", "nationkey"]),
            table("n", &["nationkey"]),
        ],
        keys: vec![
            (key("c", "nationkey"), key("s", "nationkey")),
            (key("s", "nationkey"), key("n", "nationkey")),
        ],
        filters: vec![],
        null_equality: NullEquality::NullEqualsNothing,
    };
    let sizes = [sized(1e6, 1e6), sized(1e5, 1e5), sized(100.0, 100.0)];
    let classes = KeyClasses::of(&tree, &sizes).expect("columns of the tables");
    assert_eq!(classes.distinct(0), Some(100.0));
    assert_eq!(classes.distinct(1), Some(100.0));
}
