//! Table-driven checks of operators, functions and NULL rules over sample records.

use kask_bag_expr::{RecordExpr, lookup};
use serde_json::{Value, json};

fn record() -> Value {
    json!({
        "status": "ok",
        "name": "Ada",
        "user": {"age": 36, "country": "fr", "address": {"city": "Paris"}},
        "tags": ["a", "b", "c"],
        "score": 2.5,
        "three": 3.0,
        "n": 7,
        "neg": -7,
        "zero": 0,
        "flag": true,
        "off": false,
        "nothing": null,
        "Weird Name": 1,
        "Case": "upper-c",
        "case": "lower-c",
        "big": 9_223_372_036_854_775_807_i64,
        "padded": "  hi  ",
        "obj": {"a": 1, "b": [1, 2]},
        "nums": [1, 2.0, 3],
        "word": "héllo",
        "idx": 2,
        "key": "country",
        "pat": "A%",
        "csv": "a,b,,d",
        "re": "^A"
    })
}

/// Evaluates each `(sql, expected JSON)` pair against `item`, reporting every mismatch at once.
fn check_all(item: &Value, cases: &[(&str, &str)]) {
    let mut failures = Vec::new();
    for (sql, expected) in cases {
        let expected: Value = serde_json::from_str(expected).expect("expected value is JSON");
        match RecordExpr::compile(sql) {
            Err(e) => failures.push(format!("{sql}: compile error {e}")),
            Ok(expr) => match expr.eval(item) {
                Ok(got) if got == expected && same_number_kind(&got, &expected) => {}
                Ok(got) => failures.push(format!("{sql}: got {got}, expected {expected}")),
                Err(e) => failures.push(format!("{sql}: eval error {e}")),
            },
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// `json!(3) == json!(3.0)` is false in serde_json already, but make the
/// integer/float distinction explicit for the reader of a failure.
fn same_number_kind(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.is_f64() == y.is_f64(),
        _ => true,
    }
}

#[test]
fn fields_and_subscripts() {
    check_all(
        &record(),
        &[
            ("status", r#""ok""#),
            ("user.country", r#""fr""#),
            ("user.address.city", r#""Paris""#),
            (r#""Weird Name""#, "1"),
            ("Case", r#""upper-c""#),
            ("case_missing", "null"),
            (r#""case""#, r#""lower-c""#),
            ("missing", "null"),
            ("user.missing.deeper", "null"),
            ("status.inner", "null"),
            ("nothing", "null"),
            ("tags[1]", r#""a""#),
            ("tags[3]", r#""c""#),
            ("tags[4]", "null"),
            ("tags[0]", "null"),
            ("tags[-1]", "null"),
            ("tags[idx]", r#""b""#),
            ("tags[nothing]", "null"),
            ("user['country']", r#""fr""#),
            ("user[key]", r#""fr""#),
            ("obj.b[2]", "2"),
            ("obj['b'][1]", "1"),
            ("status[1]", "null"),
            ("obj", r#"{"a": 1, "b": [1, 2]}"#),
            ("user.address['city']", r#""Paris""#),
        ],
    );
}

#[test]
fn literals() {
    check_all(
        &record(),
        &[
            ("42", "42"),
            ("-42", "-42"),
            ("-9223372036854775808", "-9223372036854775808"),
            ("1.5", "1.5"),
            ("1e3", "1000.0"),
            ("3.0", "3.0"),
            ("'it''s'", r#""it's""#),
            ("TRUE", "true"),
            ("false", "false"),
            ("NULL", "null"),
            ("99999999999999999999", "1e20"),
        ],
    );
}

#[test]
fn arithmetic() {
    check_all(
        &record(),
        &[
            ("n + 1", "8"),
            ("n - 10", "-3"),
            ("n * 3", "21"),
            ("n / 2", "3"),
            ("neg / 2", "-3"),
            ("n % 3", "1"),
            ("neg % 3", "-1"),
            ("n / 2.0", "3.5"),
            ("score * 2", "5.0"),
            ("three + 1", "4.0"),
            ("three", "3.0"),
            ("score % 1", "0.5"),
            ("-n", "-7"),
            ("-score", "-2.5"),
            ("+n", "7"),
            ("n + nothing", "null"),
            ("missing * 2", "null"),
            ("-missing", "null"),
            ("1 + 2 * 3", "7"),
            ("(1 + 2) * 3", "9"),
            ("big - 1", "9223372036854775806"),
            ("9223372036854775807 % -1", "0"),
            ("-9223372036854775808 % -1", "0"),
        ],
    );
}

#[test]
fn concatenation() {
    check_all(
        &record(),
        &[
            ("name || '!'", r#""Ada!""#),
            ("name || n", r#""Ada7""#),
            ("flag || '-' || score", r#""true-2.5""#),
            ("name || missing", "null"),
            ("obj || ''", r#""{\"a\":1,\"b\":[1,2]}""#),
        ],
    );
}

#[test]
fn comparisons() {
    check_all(
        &record(),
        &[
            ("n = 7", "true"),
            ("n = 7.0", "true"),
            ("three = 3", "true"),
            ("n <> 7", "false"),
            ("n != 8", "true"),
            ("n < 7.5", "true"),
            ("n <= 7", "true"),
            ("n > 7", "false"),
            ("n >= 8", "false"),
            ("big > 9223372036854775806", "true"),
            ("big = 9223372036854775806", "false"),
            ("name = 'Ada'", "true"),
            ("name < 'B'", "true"),
            ("'Z' < 'a'", "true"),
            ("'é' > 'z'", "true"),
            ("flag = true", "true"),
            ("off < flag", "true"),
            ("n = nothing", "null"),
            ("missing <> 'x'", "null"),
            ("nums = obj.b", "false"),
            ("obj.b = obj.b", "true"),
            ("nums <> nums", "false"),
            ("obj = obj", "true"),
        ],
    );
}

#[test]
fn three_valued_logic() {
    check_all(
        &record(),
        &[
            ("flag AND off", "false"),
            ("flag AND flag", "true"),
            ("flag OR off", "true"),
            ("off OR off", "false"),
            ("NOT flag", "false"),
            ("NOT nothing", "null"),
            ("nothing AND off", "false"),
            ("nothing AND flag", "null"),
            ("off AND nothing", "false"),
            ("nothing OR flag", "true"),
            ("nothing OR off", "null"),
            ("flag OR nothing", "true"),
            ("nothing AND nothing", "null"),
            // Short-circuit: the right side is never evaluated.
            ("off AND n + 'x' = 1", "false"),
            ("flag OR n + 'x' = 1", "true"),
        ],
    );
}

#[test]
fn is_predicates() {
    check_all(
        &record(),
        &[
            ("nothing IS NULL", "true"),
            ("missing IS NULL", "true"),
            ("n IS NULL", "false"),
            ("n IS NOT NULL", "true"),
            ("flag IS TRUE", "true"),
            ("nothing IS TRUE", "false"),
            ("off IS NOT TRUE", "true"),
            ("nothing IS NOT TRUE", "true"),
            ("off IS FALSE", "true"),
            ("nothing IS FALSE", "false"),
            ("flag IS NOT FALSE", "true"),
            ("nothing IS NOT FALSE", "true"),
            ("nothing IS UNKNOWN", "true"),
            ("flag IS NOT UNKNOWN", "true"),
            ("n IS DISTINCT FROM 7", "false"),
            ("n IS DISTINCT FROM 8", "true"),
            ("n IS DISTINCT FROM nothing", "true"),
            ("nothing IS DISTINCT FROM missing", "false"),
            ("nothing IS NOT DISTINCT FROM missing", "true"),
            ("n IS NOT DISTINCT FROM 7.0", "true"),
        ],
    );
}

#[test]
fn in_and_between() {
    check_all(
        &record(),
        &[
            ("status IN ('ok', 'fine')", "true"),
            ("status IN ('bad')", "false"),
            ("status NOT IN ('bad')", "true"),
            ("status NOT IN ('ok')", "false"),
            ("status IN ('bad', NULL)", "null"),
            ("status IN ('ok', NULL)", "true"),
            ("status NOT IN ('bad', NULL)", "null"),
            ("missing IN ('a')", "null"),
            ("n IN (1, 7.0)", "true"),
            ("n BETWEEN 1 AND 7", "true"),
            ("n BETWEEN 8 AND 9", "false"),
            ("n NOT BETWEEN 8 AND 9", "true"),
            ("n BETWEEN 1 AND nothing", "null"),
            ("n BETWEEN 8 AND nothing", "false"),
            ("n NOT BETWEEN 8 AND nothing", "true"),
            ("name BETWEEN 'A' AND 'B'", "true"),
            ("score BETWEEN 2 AND 3", "true"),
        ],
    );
}

#[test]
fn like_and_ilike() {
    check_all(
        &record(),
        &[
            ("name LIKE 'A%'", "true"),
            ("name LIKE 'a%'", "false"),
            ("name ILIKE 'a%'", "true"),
            ("name NOT LIKE 'A%'", "false"),
            ("name NOT ILIKE 'x%'", "true"),
            ("name LIKE 'A_a'", "true"),
            ("name LIKE 'A_'", "false"),
            ("word LIKE 'h_llo'", "true"),
            ("'50%' LIKE '50!%' ESCAPE '!'", "true"),
            ("'500' LIKE '50!%' ESCAPE '!'", "false"),
            (r"'a_b' LIKE 'a\_b'", "true"),
            (r"'axb' LIKE 'a\_b'", "false"),
            (r"'a\b' LIKE 'a\b' ESCAPE ''", "true"),
            ("missing LIKE 'a%'", "null"),
            ("name LIKE nothing", "null"),
            ("name LIKE pat", "true"),
            ("name ILIKE lower(pat)", "true"),
        ],
    );
}

#[test]
fn case_expressions() {
    check_all(
        &record(),
        &[
            ("CASE WHEN n > 5 THEN 'big' ELSE 'small' END", r#""big""#),
            ("CASE WHEN n > 50 THEN 'big' ELSE 'small' END", r#""small""#),
            ("CASE WHEN n > 50 THEN 'big' END", "null"),
            ("CASE WHEN nothing THEN 1 WHEN flag THEN 2 END", "2"),
            (
                "CASE status WHEN 'bad' THEN 1 WHEN 'ok' THEN 2 ELSE 3 END",
                "2",
            ),
            ("CASE nothing WHEN NULL THEN 1 ELSE 2 END", "2"),
            // Only the chosen branch is evaluated.
            ("CASE WHEN flag THEN 1 ELSE 1 / 0 END", "1"),
        ],
    );
}

#[test]
fn casts() {
    check_all(
        &record(),
        &[
            ("CAST('42' AS INT)", "42"),
            ("CAST(' 42 ' AS BIGINT)", "42"),
            ("CAST(2.5 AS INTEGER)", "3"),
            ("CAST(-2.5 AS INTEGER)", "-3"),
            ("CAST(2.4 AS INT)", "2"),
            ("CAST(flag AS INT)", "1"),
            ("n::double", "7.0"),
            ("CAST('1.5' AS DOUBLE)", "1.5"),
            ("CAST(n AS REAL)", "7.0"),
            ("CAST(n AS DECIMAL(10, 2))", "7.0"),
            ("CAST(n AS FLOAT)", "7.0"),
            ("CAST(n AS VARCHAR)", r#""7""#),
            ("CAST(score AS TEXT)", r#""2.5""#),
            ("CAST(flag AS STRING)", r#""true""#),
            ("CAST(tags AS VARCHAR)", r#""[\"a\",\"b\",\"c\"]""#),
            ("CAST(obj AS TEXT)", r#""{\"a\":1,\"b\":[1,2]}""#),
            ("CAST('true' AS BOOLEAN)", "true"),
            ("CAST('f' AS BOOLEAN)", "false"),
            ("CAST('1' AS BOOL)", "true"),
            ("CAST('0' AS BOOLEAN)", "false"),
            ("CAST(1 AS BOOLEAN)", "true"),
            ("CAST(0 AS BOOLEAN)", "false"),
            ("CAST(nothing AS INT)", "null"),
            ("CAST(missing AS VARCHAR)", "null"),
            ("TRY_CAST('abc' AS INT)", "null"),
            ("TRY_CAST('12' AS INT)", "12"),
            ("TRY_CAST(tags AS INT)", "null"),
            ("TRY_CAST('maybe' AS BOOLEAN)", "null"),
        ],
    );
}

#[test]
fn string_functions() {
    check_all(
        &record(),
        &[
            ("lower(name)", r#""ada""#),
            ("UPPER(name)", r#""ADA""#),
            ("upper(word)", r#""HÉLLO""#),
            ("length(word)", "5"),
            ("char_length(name)", "3"),
            ("character_length('')", "0"),
            ("trim(padded)", r#""hi""#),
            ("ltrim(padded)", r#""hi  ""#),
            ("rtrim(padded)", r#""  hi""#),
            ("btrim('xxhixx', 'x')", r#""hi""#),
            ("trim(BOTH 'x' FROM 'xxhixx')", r#""hi""#),
            ("trim(LEADING 'x' FROM 'xxhixx')", r#""hixx""#),
            ("trim(TRAILING 'x' FROM 'xxhixx')", r#""xxhi""#),
            ("ltrim('xyhi', 'yx')", r#""hi""#),
            ("substr(word, 2)", r#""éllo""#),
            ("substr(word, 2, 2)", r#""él""#),
            ("substring(word, 0, 3)", r#""hé""#),
            ("substring(word FROM 2 FOR 3)", r#""éll""#),
            ("substring(word FROM 4)", r#""lo""#),
            ("substring(word FOR 2)", r#""hé""#),
            ("substr(word, 10)", r#""""#),
            ("concat(name, '-', n, nothing, flag)", r#""Ada-7true""#),
            ("concat(nothing)", r#""""#),
            ("concat_ws(',', name, nothing, n)", r#""Ada,7""#),
            ("concat_ws(nothing, name)", "null"),
            ("replace(name, 'a', 'o')", r#""Ado""#),
            ("replace(name, '', 'o')", r#""Ada""#),
            ("split_part(csv, ',', 2)", r#""b""#),
            ("split_part(csv, ',', 3)", r#""""#),
            ("split_part(csv, ',', -1)", r#""d""#),
            ("split_part(csv, ',', 9)", r#""""#),
            ("starts_with(name, 'Ad')", "true"),
            ("ends_with(name, 'x')", "false"),
            ("strpos(word, 'llo')", "3"),
            ("strpos(word, 'z')", "0"),
            ("position('l' IN word)", "3"),
            ("reverse(word)", r#""olléh""#),
            ("lpad(name, 6, 'xy')", r#""xyxAda""#),
            ("lpad(name, 2)", r#""Ad""#),
            ("lpad(name, 5)", r#""  Ada""#),
            ("rpad(name, 5, '.')", r#""Ada..""#),
            ("rpad(name, 5, '')", r#""Ada""#),
            ("left(word, 2)", r#""hé""#),
            ("left(word, -2)", r#""hél""#),
            ("right(word, 2)", r#""lo""#),
            ("right(word, -2)", r#""llo""#),
            ("right(word, 10)", r#""héllo""#),
            ("repeat(name, 2)", r#""AdaAda""#),
            ("repeat(name, -1)", r#""""#),
            ("lower(missing)", "null"),
            ("upper(user.country)", r#""FR""#),
            ("length(nothing)", "null"),
            ("substr(name, nothing)", "null"),
        ],
    );
}

#[test]
fn regex_functions() {
    check_all(
        &record(),
        &[
            ("regexp_like(name, '^A.a$')", "true"),
            ("regexp_like(name, '^a')", "false"),
            ("regexp_like(name, '^a', 'i')", "true"),
            ("regexp_like(name, re)", "true"),
            ("regexp_like(word, re)", "false"),
            ("regexp_replace(word, 'l', 'L')", r#""héLlo""#),
            ("regexp_replace(word, 'l', 'L', 'g')", r#""héLLo""#),
            (r"regexp_replace(name, '(A)(d)', '\2\1')", r#""dAa""#),
            (r"regexp_replace(name, 'd', '[\&]')", r#""A[d]a""#),
            ("regexp_replace(name, 'd', '$1')", r#""A$1a""#),
            ("regexp_replace(name, 'A', 'x', 'gi')", r#""xdx""#),
            ("regexp_like(missing, 'a')", "null"),
            ("regexp_replace(name, nothing, 'x')", "null"),
        ],
    );
}

#[test]
fn null_handling_functions() {
    check_all(
        &record(),
        &[
            ("coalesce(missing, nothing, name)", r#""Ada""#),
            ("coalesce(missing, nothing)", "null"),
            ("coalesce(name, 1 / 0)", r#""Ada""#),
            ("nullif(n, 7)", "null"),
            ("nullif(n, 8)", "7"),
            ("nullif(nothing, 8)", "null"),
            ("nullif(n, nothing)", "7"),
            ("greatest(1, n, 3)", "7"),
            ("greatest(1, nothing, 3)", "3"),
            ("greatest(2.5, 2)", "2.5"),
            ("least(1, n, 0.5)", "0.5"),
            ("least('b', 'a')", r#""a""#),
            ("least(nothing, missing)", "null"),
        ],
    );
}

#[test]
fn math_functions() {
    check_all(
        &record(),
        &[
            ("abs(neg)", "7"),
            ("abs(-2.5)", "2.5"),
            ("round(score)", "3.0"),
            ("round(-2.5)", "-3.0"),
            ("round(2.345, 2)", "2.35"),
            ("round(n)", "7"),
            ("round(1250, -2)", "1300"),
            ("round(-1250, -2)", "-1300"),
            ("round(1249, -2)", "1200"),
            ("round(1234.5, -2)", "1200.0"),
            ("floor(score)", "2.0"),
            ("floor(-2.5)", "-3.0"),
            ("ceil(score)", "3.0"),
            ("ceiling(2.1)", "3.0"),
            ("floor(n)", "7"),
            ("sqrt(16)", "4.0"),
            ("power(2, 10)", "1024"),
            ("pow(2, -1)", "0.5"),
            ("power(2.0, 3)", "8.0"),
            ("exp(0)", "1.0"),
            ("ln(1)", "0.0"),
            ("log10(1000)", "3.0"),
            ("log(100)", "2.0"),
            ("log(2, 8)", "3.0"),
            ("sign(neg)", "-1"),
            ("sign(zero)", "0"),
            ("sign(score)", "1.0"),
            ("sign(0.0)", "0.0"),
            ("abs(missing)", "null"),
            ("round(nothing, 2)", "null"),
        ],
    );
}

#[test]
fn array_functions() {
    check_all(
        &record(),
        &[
            ("cardinality(tags)", "3"),
            ("array_length(tags)", "3"),
            ("array_length(tags, 1)", "3"),
            ("array_length(tags, 2)", "null"),
            ("array_contains(tags, 'b')", "true"),
            ("array_contains(tags, 'z')", "false"),
            ("array_contains(nums, 2)", "true"),
            ("array_contains(tags, 2)", "false"),
            ("array_contains(missing, 'a')", "null"),
            ("array_contains(tags, nothing)", "null"),
            ("cardinality(missing)", "null"),
        ],
    );
}

#[test]
fn keyword_like_field_names() {
    let item = json!({"user": {"age": 20}, "value": 3, "date": "d"});
    check_all(
        &item,
        &[
            ("user.age", "20"),
            ("user.age >= 18", "true"),
            ("value + 1", "4"),
            ("date", r#""d""#),
            ("user", r#"{"age": 20}"#),
        ],
    );
}

#[test]
fn missing_fields_are_null_and_drop_in_filters() {
    let expr = RecordExpr::compile("upper(user.country)").expect("compiles");
    assert_eq!(expr.eval(&json!({})).expect("evaluates"), Value::Null);
    let filter = RecordExpr::compile("upper(user.country) = 'FR'").expect("compiles");
    assert!(!filter.matches(&json!({})).expect("evaluates"));
    assert!(
        filter
            .matches(&json!({"user": {"country": "fr"}}))
            .expect("evaluates")
    );
    assert!(!filter.matches(&json!({"user": "fr"})).expect("evaluates"));
}

#[test]
fn non_object_items_are_value_records() {
    check_all(
        &json!("hello"),
        &[
            ("value", r#""hello""#),
            ("length(value)", "5"),
            ("upper(value)", r#""HELLO""#),
            ("other", "null"),
            ("value.x", "null"),
        ],
    );
    check_all(&json!(41), &[("value + 1", "42")]);
    check_all(&json!([10, 20]), &[("value[2]", "20")]);
    check_all(&json!(null), &[("value IS NULL", "true")]);
    let filter = RecordExpr::compile("value LIKE 'h%'").expect("compiles");
    assert!(filter.matches(&json!("hello")).expect("evaluates"));
    assert!(!filter.matches(&json!("world")).expect("evaluates"));
}

#[test]
fn matches_keeps_true_only() {
    let item = record();
    let keep = |sql: &str| {
        RecordExpr::compile(sql)
            .expect("compiles")
            .matches(&item)
            .expect("evaluates")
    };
    assert!(keep("status = 'ok' AND user.age >= 18"));
    assert!(!keep("status = 'bad'"));
    assert!(!keep("nothing"));
    assert!(!keep("missing = 1"));
    assert!(keep("flag"));
}

#[test]
fn fields_lists_paths_in_order() {
    let fields = |sql: &str| RecordExpr::compile(sql).expect("compiles").fields();
    assert_eq!(
        fields("upper(user.country) || status"),
        vec!["user.country", "status"]
    );
    assert_eq!(
        fields("status = 'ok' AND status <> name"),
        vec!["status", "name"]
    );
    assert_eq!(fields("user['country']"), vec!["user.country"]);
    assert_eq!(fields("tags[idx]"), vec!["tags", "idx"]);
    assert_eq!(fields("CASE WHEN a THEN b ELSE c END"), vec!["a", "b", "c"]);
    assert_eq!(fields("1 + 2"), Vec::<String>::new());
    assert_eq!(fields("x LIKE y"), vec!["x", "y"]);
    assert_eq!(fields("user.age > 1"), vec!["user.age"]);
}

#[test]
fn sql_returns_source_and_lookup_follows_identifier_rules() {
    let expr = RecordExpr::compile("a + 1").expect("compiles");
    assert_eq!(expr.sql(), "a + 1");
    let item = record();
    assert_eq!(lookup(&item, "user.address.city"), Some(&json!("Paris")));
    assert_eq!(lookup(&item, "user.nope"), None);
    assert_eq!(lookup(&item, "status.x"), None);
    assert_eq!(lookup(&item, "nothing"), Some(&Value::Null));
    assert_eq!(lookup(&json!("line"), "value"), Some(&json!("line")));
    assert_eq!(lookup(&json!("line"), "other"), None);
}

#[test]
fn record_expr_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<RecordExpr>();
}
