select
    cast(parent_id as varchar) as parent_id,
    cast(child_id as varchar) as child_id,
    cast(relation as varchar) as relation
from {{ source('lake', 'model_edges') }}
