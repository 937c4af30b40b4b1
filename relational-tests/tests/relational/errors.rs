use kask_relational::errors::syntax;

#[test]
fn a_syntax_error_says_its_place_first() {
    assert_eq!(
        syntax("sql parser error: Expected: end of statement, found: y at Line: 1, Column: 12"),
        "line 1, column 12: Expected: end of statement, found: y"
    );
    assert_eq!(
        syntax("sql parser error: Expected: an expression, found: EOF"),
        "at the end of the query: Expected: an expression, found: EOF"
    );
}
