-- the likelihood-ratio test's columns get an lrt_ prefix: marts repeat them beside other statistics
select
    cast(model_id as varchar) as model_id,
    cast(corpus as varchar) as corpus,
    cast(statistic as double) as lrt_statistic,
    cast(df as bigint) as lrt_df,
    cast(p_value as double) as lrt_p_value,
    cast(ll_taxonomic as double) as ll_taxonomic,
    cast(ll_baseline as double) as ll_baseline,
    cast(seed as bigint) as seed,
    cast(n_samples as bigint) as n_samples
from {{ source('lake', 'memorization_model_tests') }}
