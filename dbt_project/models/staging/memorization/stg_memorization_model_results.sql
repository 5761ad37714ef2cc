select
    cast(model_id as varchar) as model_id,
    cast(corpus as varchar) as corpus,
    cast(predictor as varchar) as predictor,
    cast(status as varchar) as status,
    cast(n as bigint) as n,
    cast(positives as bigint) as positives,
    cast(precision as double) as precision,
    cast(recall as double) as recall,
    cast(roc_auc as double) as roc_auc,
    cast(pr_auc as double) as pr_auc,
    cast(ece as double) as ece,
    cast(n_train as bigint) as n_train
from {{ source('lake', 'memorization_model_results') }}
