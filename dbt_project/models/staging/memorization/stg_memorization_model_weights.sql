select
    cast(model_id as varchar) as model_id,
    cast(corpus as varchar) as corpus,
    cast(predictor as varchar) as predictor,
    cast(feature as varchar) as feature,
    cast(coefficient as double) as coefficient
from {{ source('lake', 'memorization_model_weights') }}
