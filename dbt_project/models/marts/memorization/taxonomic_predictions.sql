-- held-out predictions of the taxonomic model and the baseline, for PR and calibration curves
select model_id, corpus, sample_id, predictor, y_true, p
from {{ ref('stg_taxonomic_predictions') }}
where p is not null
