//! Dataframe job graphs: named views and outputs, what loads and what is refused with its
//! field path.

mod common;

use common::errors_of;
use kask_api::load_job;

const GRAPH: &str = r#"
apiVersion: kask.dev/v1alpha1
kind: DaskJob
metadata: {name: reports}
spec:
  dataframe:
    inputs:
      orders: {path: "orders/*.parquet"}
      regions: {path: dims/regions.csv}
    views:
      paid:
        - source: orders
        - filter: "status = 'paid'"
    outputs:
      by_region:
        pipeline:
          - source: paid
          - merge: {right: regions, "on": [region_id]}
          - groupby: {by: [region], aggs: {amount: [sum]}}
        path: reports/by_region
      big:
        pipeline: [{source: by_region}, {filter: "amount_sum > 100"}]
        path: reports/big
        format: csv
"#;

#[test]
fn a_graph_lists_its_pipelines_in_order_and_its_outputs() {
    let job = load_job("job.yaml", GRAPH).expect("valid");
    let df = job.spec.dataframe.as_ref().expect("dataframe");
    let pipelines: Vec<(String, String, bool)> = df
        .pipelines()
        .into_iter()
        .map(|p| (p.name, p.field, p.is_output))
        .collect();
    assert_eq!(
        pipelines,
        [
            ("paid".into(), "spec.dataframe.views.paid".into(), false),
            (
                "by_region".into(),
                "spec.dataframe.outputs.by_region.pipeline".into(),
                true
            ),
            (
                "big".into(),
                "spec.dataframe.outputs.big.pipeline".into(),
                true
            ),
        ]
    );
    let outputs: Vec<(String, String)> = job
        .spec
        .outputs()
        .into_iter()
        .map(|o| (o.name, o.output.path))
        .collect();
    assert_eq!(
        outputs,
        [
            ("by_region".to_string(), "reports/by_region".to_string()),
            ("big".to_string(), "reports/big".to_string()),
        ]
    );
    assert_eq!(job.spec.main_output().path, "reports/by_region");
}

#[test]
fn pipeline_and_outputs_together_and_spec_output_with_a_graph_are_refused() {
    let both = GRAPH.replace("    views:", "    pipeline: [{source: orders}]\n    views:");
    assert_eq!(
        errors_of(&both),
        [
            "spec.dataframe: has both pipeline and outputs; a job graph puts each pipeline in outputs"
        ]
    );
    let with_output = format!("{GRAPH}  output: {{path: elsewhere}}\n");
    assert_eq!(
        errors_of(&with_output),
        [
            "spec.output: is not used by a job graph, whose results are in spec.dataframe.outputs; remove it"
        ]
    );
    let neither = r#"
apiVersion: kask.dev/v1alpha1
kind: DaskJob
metadata: {name: nothing}
spec:
  dataframe:
    inputs: {o: {path: "o/*.parquet"}}
  output: {path: out}
"#;
    assert_eq!(
        errors_of(neither),
        [
            "spec.dataframe.pipeline: needs at least one step, starting with `source: <input>` (or spec.dataframe.outputs for several results)"
        ]
    );
}

#[test]
fn a_pipeline_can_use_only_inputs_and_the_pipelines_before_it() {
    let later = GRAPH.replace("- source: orders", "- source: big");
    assert_eq!(
        errors_of(&later),
        [
            "spec.dataframe.views.paid[0].source: \"big\" comes after this pipeline; a pipeline can use the inputs and the views and outputs before it"
        ]
    );
    let unknown = GRAPH.replace("right: regions", "right: regoins");
    assert_eq!(
        errors_of(&unknown),
        [
            "spec.dataframe.outputs.by_region.pipeline[1].merge.right: no input, view or output named \"regoins\" (inputs: orders, regions; pipelines before this one: paid)"
        ]
    );
}

#[test]
fn names_that_clash_or_cannot_be_folders_are_refused() {
    let clash = GRAPH.replace("    views:\n      paid:", "    views:\n      orders:");
    let clash = clash.replace("source: paid", "source: orders");
    assert_eq!(
        errors_of(&clash),
        ["spec.dataframe.views.orders: \"orders\" is also the name of an input"]
    );
    let slash = GRAPH.replace("      big:\n", "      big/2:\n");
    assert_eq!(
        errors_of(&slash),
        [
            "spec.dataframe.outputs.big/2: a view or output name must not be empty nor contain '.', '/' or '\"'"
        ]
    );
    let overlap = GRAPH.replace("path: reports/big", "path: reports/by_region/big");
    let errors = errors_of(&overlap);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0]
            .starts_with("spec.dataframe.outputs.big.path: \"reports/by_region/big\" overlaps"),
        "{errors:?}"
    );
}

/// `kask run` and `kask validate` refuse what the API server's schema refuses: more steps
/// or more pipelines than a job may have.
#[test]
fn more_steps_or_pipelines_than_the_api_server_takes_are_refused_locally_too() {
    let job = |spec: String| {
        format!(
            "apiVersion: kask.dev/v1alpha1\nkind: DaskJob\nmetadata: {{name: big}}\nspec:\n{spec}"
        )
    };
    let steps = "{rename: {a: b}}, ".repeat(256);
    let long = job(format!(
        "  dataframe:\n    inputs: {{o: {{path: \"o/*.parquet\"}}}}\n    pipeline: [{{source: o}}, {steps}]\n  output: {{path: out}}\n"
    ));
    assert_eq!(
        errors_of(&long),
        ["spec.dataframe.pipeline: has 257 steps; a job may have at most 256"]
    );
    let outputs: String = (0..65)
        .map(|i| format!("      r{i}: {{path: out/r{i}, pipeline: [{{source: o}}]}}\n"))
        .collect();
    let wide = job(format!(
        "  dataframe:\n    inputs: {{o: {{path: \"o/*.parquet\"}}}}\n    outputs:\n{outputs}"
    ));
    assert_eq!(
        errors_of(&wide),
        ["spec.dataframe.outputs: has 65 outputs; a job may have at most 64"]
    );
    let bag_steps = "{filter: \"true\"}, ".repeat(256);
    let bag = job(format!(
        "  bag:\n    inputs: {{t: {{path: \"t/*.txt\"}}}}\n    steps: [{{source: t}}, {bag_steps}]\n  output: {{path: out}}\n"
    ));
    assert_eq!(
        errors_of(&bag),
        ["spec.bag.steps: has 257 steps; a job may have at most 256"]
    );
}
