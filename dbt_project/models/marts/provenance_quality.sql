-- How well does each method x metric x config tell related pairs from unrelated ones?
-- ROC-AUC by Mann-Whitney (ties count 1/2), TPR at the target FPR, and the
-- threshold with the best Youden J, overall ('all') and per derivation type
-- (positives of that type against all unrelated pairs). One sort per experiment:
-- each positive is scored against a cumulative count of negatives (ASOF join).
-- Only pairs of the common model set count (pair_similarities.in_common_set), so every
-- row ranks the same models and rows of different methods / metrics are comparable;
-- n_models_common is that set's size, n_models_experiment the experiment's own.
with labelled as (
    select method, metric, config_hash, similarity, is_related, relation
    from {{ ref('pair_similarities') }}
    where in_common_set
),
experiment_models as (
    select method, metric, config_hash, model_a as model_id, in_common_set from {{ ref('pair_similarities') }}
    union all
    select method, metric, config_hash, model_b, in_common_set from {{ ref('pair_similarities') }}
),
sizes as (
    select method, metric, config_hash,
        count(distinct model_id) filter (where in_common_set) as n_models_common,
        count(distinct model_id) as n_models_experiment
    from experiment_models
    group by all
),
neg_values as (
    select method, metric, config_hash, similarity, count(*) as n_equal
    from labelled
    where not is_related
    group by all
),
neg_cum as (
    select *,
        sum(n_equal) over (partition by method, metric, config_hash order by similarity
                           rows between unbounded preceding and current row) as n_le
    from neg_values
),
neg_total as (
    select method, metric, config_hash, count(*) as n_neg
    from labelled where not is_related group by all
),
positives as (
    select method, metric, config_hash, similarity, relation as derivation_type
    from labelled where is_related
    union all
    select method, metric, config_hash, similarity, 'all' from labelled where is_related
),
scored as (
    select
        p.method, p.metric, p.config_hash, p.derivation_type, p.similarity,
        t.n_neg,
        coalesce(c.n_le, 0) - case when c.similarity = p.similarity then c.n_equal else 0 end as n_below,
        case when c.similarity = p.similarity then c.n_equal else 0 end as n_tied
    from positives p
    join neg_total t using (method, metric, config_hash)
    asof left join neg_cum c
        on c.method = p.method and c.metric = p.metric and c.config_hash = p.config_hash
       and p.similarity >= c.similarity
),
rates as (
    select *,
        count(*) over (partition by method, metric, config_hash, derivation_type) as n_pos,
        count(*) over (partition by method, metric, config_hash, derivation_type order by similarity desc
                       range between unbounded preceding and current row) as pos_ge,
        n_neg - n_below as neg_ge
    from scored
),
metrics as (
    select *,
        pos_ge / n_pos as tpr,
        neg_ge / n_neg as fpr
    from rates
)
select
    m.method,
    m.metric,
    m.config_hash,
    m.derivation_type,
    any_value(n_pos) as n_positive_pairs,
    any_value(n_neg) as n_negative_pairs,
    sum(n_below + 0.5 * n_tied) / (any_value(n_pos) * any_value(n_neg)) as roc_auc,
    coalesce(max(tpr) filter (where fpr <= {{ var('target_fpr') }}), 0.0) as tpr_at_target_fpr,
    {{ var('target_fpr') }} as target_fpr,
    arg_max(similarity, tpr - fpr) as best_threshold,
    max(tpr - fpr) as youden_j,
    avg(similarity) as mean_positive_similarity,
    any_value(z.n_models_common) as n_models_common,
    any_value(z.n_models_experiment) as n_models_experiment
from metrics m
join sizes z using (method, metric, config_hash)
where n_neg > 0
group by m.method, m.metric, m.config_hash, m.derivation_type
