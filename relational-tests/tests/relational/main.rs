//! Tests of `kask-relational`'s parts, one file per module of the library, each against
//! a plain computation in the test or DataFusion's own operator.

mod build_side;
mod codec;
mod common_subplans;
mod corr_groups;
mod ctes;
mod cut;
mod decimal_arith;
mod dense_groups;
mod dict_groups;
mod errors;
mod estimate;
mod group_keys;
mod group_top_k;
mod join_order;
mod key_filter;
mod lean_filter;
mod lean_logic;
mod packed_merge;
mod packed_sort;
mod process_cache;
mod radix_groups;
mod range_sort;
mod set_semi_joins;
mod shared_build;
mod shared_table;
mod shares;
mod test_plans;
mod view_eq;
mod whole_groups;
mod widening_cast;
