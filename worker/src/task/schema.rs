//! Plan-time resolution: builds every stage's task plan over empty sources, in order, to learn
//! the schema each stage writes, to fill in shuffle keys, and to report unknown columns and
//! bad expressions before any task runs.

use super::build::{Builder, TaskData, needs_float_hash};
use super::tables::session;
use crate::error::{Error, Result};
use crate::plan::{Partial, Plan, PlanSchema, Sink, StageSource};
use crate::store::Store;

/// Fills in schemas, distinct keys and merge key hashing of a freshly cut plan.
pub async fn resolve(plan: &mut Plan, store: &Store) -> Result<()> {
    let ctx = session(store);
    for s in 0..plan.stages.len() {
        let built = Builder {
            ctx: &ctx,
            plan,
            store,
            inputs: None,
        }
        .build(&plan.stages[s], TaskData::default())
        .await?;
        let stage = &mut plan.stages[s];
        stage.output_schema = PlanSchema(built.exec.schema());
        stage.sink_input_schema = built.sink_input_schema.map(PlanSchema);
        if let Sink::Shuffle { keys, partial, .. } = &mut stage.sink {
            if let Some(k) = built.group_keys {
                *keys = k;
            }
            if let Partial::Distinct { columns, .. } = partial {
                *columns = built.distinct_columns;
            }
        }
        if let StageSource::Join { left, right, .. } = stage.source.clone() {
            set_float_keys(plan, left, right)?;
        }
    }
    Ok(())
}

/// Both sides of a shuffled merge must send equal keys to the same partition, so a key that is
/// an integer on one side and a float on the other is hashed as a float on both.
fn set_float_keys(plan: &mut Plan, left: usize, right: usize) -> Result<()> {
    let key_types = |stage: usize| -> Result<Vec<datafusion::arrow::datatypes::DataType>> {
        let st = &plan.stages[stage];
        let schema = st.output_schema.schema();
        let Sink::Shuffle { keys, .. } = &st.sink else {
            return Err(Error::internal(format!(
                "stage {} feeds a merge without a shuffle",
                st.name
            )));
        };
        keys.iter()
            .map(|k| {
                schema
                    .field_with_name(k)
                    .map(|f| f.data_type().clone())
                    .map_err(|e| Error::internal(e.to_string()))
            })
            .collect()
    };
    let (lt, rt) = (key_types(left)?, key_types(right)?);
    let floats: Vec<bool> = lt
        .iter()
        .zip(&rt)
        .map(|(a, b)| needs_float_hash(a, b))
        .collect();
    for s in [left, right] {
        if let Sink::Shuffle { float_keys, .. } = &mut plan.stages[s].sink {
            *float_keys = floats.clone();
        }
    }
    Ok(())
}
