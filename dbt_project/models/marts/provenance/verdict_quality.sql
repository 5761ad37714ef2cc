-- Out-of-fold quality of the combined verdict (method 'combined'), in the shape of
-- provenance_quality: per derivation type (its related pairs against every unrelated pair),
-- 'all' (every related pair), and 'sibling' (every related pair against the sibling pairs only,
-- the hardest negatives). ROC-AUC is Mann-Whitney from average ranks (ties count 1/2); TPR at the
-- fit's target FPR is the best TPR over thresholds at related scores whose FPR (unrelated pairs
-- scoring >= it) stays within the target; precision / recall / FPR are at the fit's threshold.
-- Pairs without an out-of-fold score are left out.
with cur as (
    select fit_id, threshold, target_fpr from {{ ref('stg_provenance_model') }} where is_current
),
scored as (
    select s.relation, s.label, s.score_oof as score
    from {{ ref('stg_provenance_scores') }} s
    join cur using (fit_id)
    where s.score_oof is not null
),
positive_types as (
    select distinct relation as derivation_type from scored where label
    union all
    select 'all'
),
grouped as (
    select relation as derivation_type, score, true as is_pos from scored where label
    union all
    select 'all', score, true from scored where label
    union all
    select 'sibling', score, true from scored where label
    union all
    select t.derivation_type, s.score, false from scored s cross join positive_types t where not s.label
    union all
    select 'sibling', score, false from scored where not label and relation = 'sibling'
),
ranked as (
    select
        derivation_type,
        score,
        is_pos,
        rank() over (partition by derivation_type order by score) as rnk,
        count(*) over (partition by derivation_type, score) as n_tied,
        sum(is_pos::int) over (partition by derivation_type) as n_pos,
        sum((not is_pos)::int) over (partition by derivation_type) as n_neg,
        sum(is_pos::int) over (partition by derivation_type order by score desc
                               range between unbounded preceding and current row) as pos_ge,
        sum((not is_pos)::int) over (partition by derivation_type order by score desc
                                     range between unbounded preceding and current row) as neg_ge
    from grouped
),
counts as (
    select
        r.derivation_type,
        any_value(r.n_pos)::bigint as n_pos,
        any_value(r.n_neg)::bigint as n_neg,
        -- sum of the related pairs' average ranks, minus their own rank sum, over all pair comparisons
        (sum(r.rnk + (r.n_tied - 1) / 2.0) filter (where r.is_pos)
            - any_value(r.n_pos) * (any_value(r.n_pos) + 1) / 2.0) as u_statistic,
        max(r.pos_ge / r.n_pos) filter (where r.is_pos and r.neg_ge / r.n_neg <= c.target_fpr) as best_tpr,
        count(*) filter (where r.is_pos and r.score >= c.threshold) as tp,
        count(*) filter (where not r.is_pos and r.score >= c.threshold) as fp,
        avg(r.score) filter (where r.is_pos) as mean_positive_score,
        avg(r.score) filter (where not r.is_pos) as mean_negative_score
    from ranked r
    cross join cur c
    group by r.derivation_type
)
select
    'combined' as method,
    'logistic_regression' as metric,
    c.fit_id,
    k.derivation_type,
    k.n_pos as n_positive_pairs,
    k.n_neg as n_negative_pairs,
    k.u_statistic / (k.n_pos * k.n_neg) as roc_auc,
    coalesce(k.best_tpr, 0.0) as tpr_at_target_fpr,
    c.target_fpr,
    c.threshold,
    k.tp / k.n_pos as recall_at_threshold,
    k.fp / k.n_neg as fpr_at_threshold,
    k.tp / nullif(k.tp + k.fp, 0) as precision_at_threshold,
    k.tp as n_true_positive,
    k.fp as n_false_positive,
    k.mean_positive_score,
    k.mean_negative_score
from counts k
cross join cur c
where k.n_pos > 0 and k.n_neg > 0
