-- Every model x corpus with taxonomic-model results reports both the baseline and the taxonomic predictor.
select model_id, corpus
from {{ ref('taxonomic_model_metrics') }}
group by model_id, corpus
having count_if(predictor = 'baseline') <> 1 or count_if(predictor = 'taxonomic') <> 1
