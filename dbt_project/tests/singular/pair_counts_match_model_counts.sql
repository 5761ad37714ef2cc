-- Every experiment holds all pairs among its models: intrafamily n(n-1)/2, interfamily n_a*n_b.
with present as (
    select method, metric, config_hash, model_a as model_id, family_a as family from {{ ref('pair_similarities') }}
    union
    select method, metric, config_hash, model_b, family_b from {{ ref('pair_similarities') }}
),
fam as (
    select method, metric, config_hash, family, count(*) as n from present group by all
),
intra_bad as (
    select s.family as what, s.n_pairs, f.n * (f.n - 1) / 2 as expected
    from {{ ref('intrafamily_stats') }} s
    join fam f using (method, metric, config_hash, family)
    where s.n_pairs <> f.n * (f.n - 1) / 2
),
inter_bad as (
    select s.family_pair as what, s.n_pairs, f1.n * f2.n as expected
    from {{ ref('interfamily_stats') }} s
    join fam f1 on f1.method = s.method and f1.metric = s.metric and f1.config_hash = s.config_hash and f1.family = s.family_1
    join fam f2 on f2.method = s.method and f2.metric = s.metric and f2.config_hash = s.config_hash and f2.family = s.family_2
    where s.n_pairs <> f1.n * f2.n
)
select * from intra_bad
union all
select * from inter_bad
