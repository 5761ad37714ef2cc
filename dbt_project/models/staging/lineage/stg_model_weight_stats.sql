select
    cast(model_id as varchar) as model_id,
    cast(n_params as bigint) as n_params,
    cast(zero_fraction as double) as zero_fraction,
    cast(distinct_ratio as double) as distinct_ratio,
    cast(kurtosis as double) as kurtosis,
    cast(quant_type as varchar) as quant_type,
    cast(source_identity as varchar) as source_identity,
    computed_at
from {{ source('lake', 'model_weight_stats') }}
