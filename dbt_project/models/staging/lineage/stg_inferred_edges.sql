select
    cast(parent_id as varchar) as parent_id,
    cast(child_id as varchar) as child_id,
    cast(score as double) as score,
    cast(direction_confidence as double) as direction_confidence,
    cast(is_merge_parent as boolean) as is_merge_parent,
    cast(source as varchar) as source,
    cast(threshold as double) as threshold,
    cast(evidence as varchar) as evidence,
    cast(run_id as varchar) as run_id,
    inferred_at
from {{ source('lake', 'inferred_edges') }}
