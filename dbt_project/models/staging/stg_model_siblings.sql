-- Same-recipe model pairs that are not derived from each other (e.g. Qwen2.5-Coder-0.5B vs -1.5B),
-- ordered so model_a < model_b.
select distinct
    least(cast(model_a as varchar), cast(model_b as varchar)) as model_a,
    greatest(cast(model_a as varchar), cast(model_b as varchar)) as model_b,
    cast(note as varchar) as note
from {{ source('lake', 'model_siblings') }}
