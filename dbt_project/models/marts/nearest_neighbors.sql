-- For each model, its top-k most similar models per method x metric x config (k = var nn_k).
with directed as (
    select method, metric, config_hash, model_a as model_id, model_b as neighbor_id,
           display_name_b as neighbor_name, family_a as family, family_b as neighbor_family,
           relation, similarity
    from {{ ref('pair_similarities') }}
    union all
    select method, metric, config_hash, model_b, model_a, display_name_a, family_b, family_a, relation, similarity
    from {{ ref('pair_similarities') }}
),
ranked as (
    select *,
        row_number() over (partition by method, metric, config_hash, model_id
                           order by similarity desc, neighbor_id) as rank
    from directed
)
select method, metric, config_hash, model_id, rank, neighbor_id, neighbor_name, family, neighbor_family,
       family = neighbor_family as same_family, relation, similarity
from ranked
where rank <= {{ var('nn_k') }}
