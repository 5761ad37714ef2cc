-- For each model, its top-k most similar models per method x metric x config (k = var nn_k).
-- Experiments with rows in similarity_neighbors (every run of the current pipeline: exact top-k
-- from the tiled kernel, or an approximate index at Hub scale) read them; older experiments rank
-- their stored pairs. Only registered models count, as in pair_similarities; ranks are
-- recomputed after that filter (ties by neighbour id either way).
with models as (
    select * from {{ ref('stg_models') }}
),
lineage as (
    select ancestor_id as x, descendant_id as y, derivation_type from {{ ref('int_lineage_pairs') }}
    union all
    select descendant_id as x, ancestor_id as y, derivation_type from {{ ref('int_lineage_pairs') }}
),
with_neighbors as (
    select distinct method, metric, config_hash from {{ ref('stg_similarity_neighbors') }}
),
stored as (
    select n.method, n.metric, n.config_hash, n.model_id, n.neighbor_id, n.similarity
    from {{ ref('stg_similarity_neighbors') }} n
    semi join models a on a.model_id = n.model_id
    semi join models b on b.model_id = n.neighbor_id
),
from_pairs as (
    select method, metric, config_hash, model_a as model_id, model_b as neighbor_id, similarity
    from {{ ref('pair_similarities') }}
    anti join with_neighbors using (method, metric, config_hash)
    union all
    select method, metric, config_hash, model_b, model_a, similarity
    from {{ ref('pair_similarities') }}
    anti join with_neighbors using (method, metric, config_hash)
),
ranked as (
    select *,
        row_number() over (partition by method, metric, config_hash, model_id
                           order by similarity desc, neighbor_id) as rank
    from (select * from stored union all select * from from_pairs)
)
select r.method, r.metric, r.config_hash, r.model_id, r.rank, r.neighbor_id,
       b.display_name as neighbor_name, a.family, b.family as neighbor_family,
       a.family = b.family as same_family,
       coalesce(l.derivation_type, case when a.family = b.family then 'same_family' else 'unrelated' end)
           as relation,
       r.similarity
from ranked r
join models a on a.model_id = r.model_id
join models b on b.model_id = r.neighbor_id
left join lineage l on l.x = r.model_id and l.y = r.neighbor_id
where r.rank <= {{ var('nn_k') }}
