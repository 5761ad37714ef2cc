select
    cast(corpus as varchar) as corpus,
    cast(doc_id as varchar) as doc_id,
    cast(planted_id as varchar) as planted_id,
    cast(kind as varchar) as kind,
    cast(planted_count as bigint) as planted_count
from {{ source('lake', 'memorization_ground_truth') }}
