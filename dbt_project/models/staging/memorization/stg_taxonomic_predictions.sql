select
    cast(model_id as varchar) as model_id,
    cast(corpus as varchar) as corpus,
    cast(sample_id as varchar) as sample_id,
    cast(predictor as varchar) as predictor,
    cast(y_true as boolean) as y_true,
    cast(p as double) as p
from {{ source('lake', 'taxonomic_predictions') }}
