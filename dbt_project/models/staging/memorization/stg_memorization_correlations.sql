select
    cast(model_id as varchar) as model_id,
    cast(corpus as varchar) as corpus,
    cast(feature as varchar) as feature,
    cast(subset as varchar) as subset,
    cast(n as bigint) as n,
    cast(pearson as double) as pearson,
    cast(spearman as double) as spearman,
    cast(xi as double) as xi
from {{ source('lake', 'memorization_correlations') }}
