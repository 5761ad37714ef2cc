-- Precision and recall of the inferred lineage against the recorded one, per relation and overall.
-- An inferred edge counts for the relation of the recorded edge it matches (either direction);
-- spurious edges match none, so they count against the 'all' precision only.
with edges as (
    select * from {{ ref('inferred_edges') }}
),
per_relation as (
    select
        relation,
        cast(count_if(status in ('correct', 'reversed', 'missed')) as bigint) as n_recorded,
        cast(count_if(is_inferred) as bigint) as n_inferred,
        cast(count_if(status = 'correct') as bigint) as tp_directed,
        cast(count_if(status in ('correct', 'reversed')) as bigint) as tp_undirected,
        cast(0 as bigint) as n_spurious
    from edges
    where relation is not null
    group by relation
),
overall as (
    select
        'all' as relation,
        cast(count_if(status in ('correct', 'reversed', 'missed')) as bigint) as n_recorded,
        cast(count_if(is_inferred) as bigint) as n_inferred,
        cast(count_if(status = 'correct') as bigint) as tp_directed,
        cast(count_if(status in ('correct', 'reversed')) as bigint) as tp_undirected,
        cast(count_if(status = 'spurious') as bigint) as n_spurious
    from edges
),
counts as (
    select * from per_relation
    union all
    select * from overall
)
select
    relation,
    n_recorded,
    n_inferred,
    n_spurious,
    tp_directed,
    tp_undirected,
    tp_directed / nullif(n_inferred, 0) as precision_directed,
    tp_directed / nullif(n_recorded, 0) as recall_directed,
    tp_undirected / nullif(n_inferred, 0) as precision_undirected,
    tp_undirected / nullif(n_recorded, 0) as recall_undirected,
    (select min(source) from edges) as source,
    (select min(threshold) from edges) as threshold,
    (select min(run_id) from edges) as run_id
from counts
