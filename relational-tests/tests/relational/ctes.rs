use datafusion::prelude::SessionContext;
use kask_relational::ctes::*;

fn shared(query: &str) -> Option<SharedCtes> {
    shared_ctes(&SessionContext::new(), query, &|n| n == "orders")
}

#[test]
fn a_cte_named_twice_is_computed_once_and_one_named_once_stays_inline() {
    let q = "WITH r AS (SELECT k, sum(v) AS s FROM t GROUP BY k), \
             once AS (SELECT 1 AS x) \
             SELECT * FROM r, once WHERE r.s = (SELECT max(s) FROM r)";
    let got = shared(q).expect("r is computed once");
    assert_eq!(got.ctes.len(), 1);
    assert_eq!(got.ctes[0].0, "r");
    assert_eq!(got.ctes[0].1, "SELECT k, sum(v) AS s FROM t GROUP BY k");
    assert_eq!(
        got.rest,
        "WITH once AS (SELECT 1 AS x) SELECT * FROM r, once WHERE r.s = (SELECT max(s) FROM r)"
    );
    assert_eq!(shared("WITH r AS (SELECT 1 AS x) SELECT * FROM r"), None);
}

#[test]
fn a_cte_takes_the_inline_ctes_before_it_and_markers_and_names_decide() {
    let q = "WITH a AS (SELECT 1 AS x), b AS (SELECT x FROM a) \
             SELECT * FROM b JOIN b AS b2 ON b.x = b2.x";
    let got = shared(q).expect("b is computed once");
    assert_eq!(
        got.ctes,
        [(
            "b".to_string(),
            "WITH a AS (SELECT 1 AS x) SELECT x FROM a".to_string()
        )]
    );
    assert_eq!(
        got.rest,
        "WITH a AS (SELECT 1 AS x) SELECT * FROM b JOIN b AS b2 ON b.x = b2.x"
    );
    // PostgreSQL's markers, in its dialect.
    let mut config = datafusion::prelude::SessionConfig::new();
    config.options_mut().sql_parser.dialect = datafusion::config::Dialect::PostgreSQL;
    let pg = SessionContext::new_with_config(config);
    let marked = |q: &str| shared_ctes(&pg, q, &|_| false);
    let forced = marked("WITH a AS MATERIALIZED (SELECT 1 AS x) SELECT * FROM a").expect("forced");
    assert_eq!(forced.ctes[0].0, "a");
    assert_eq!(
        marked("WITH a AS NOT MATERIALIZED (SELECT 1 AS x) SELECT * FROM a, a AS a2"),
        None
    );
    // A CTE shadowing a table of the session stays inline; so does a recursive one.
    assert_eq!(
        shared("WITH orders AS (SELECT 1 AS x) SELECT * FROM orders, orders AS o"),
        None
    );
    assert_eq!(
        shared("WITH RECURSIVE r AS (SELECT 1 AS x) SELECT * FROM r, r AS r2"),
        None
    );
    // A CTE that names its columns stays inline (its query alone has other names).
    assert_eq!(
        shared("WITH r(b, a) AS (SELECT 1 AS a, 2 AS b) SELECT r.a FROM r, r AS r2"),
        None
    );
    // Quoted names keep their case.
    let quoted =
        shared("WITH \"R\" AS (SELECT 1 AS x) SELECT * FROM \"R\", \"R\" AS r2").expect("R");
    assert_eq!(quoted.ctes[0].0, "R");
}
