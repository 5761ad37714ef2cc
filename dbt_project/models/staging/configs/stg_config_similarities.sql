select
    cast(model_a as varchar) as model_a,
    cast(model_b as varchar) as model_b,
    cast(metric as varchar) as metric,
    cast(kind as varchar) as kind,
    cast(rank as integer) as rank,
    cast(distance as double) as distance,
    cast(similarity as double) as similarity,
    cast(population_size as bigint) as population_size
from {{ source('lake', 'config_similarities') }}
