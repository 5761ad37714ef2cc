select
    cast(model_id as varchar) as model_id,
    cast(pca_x as double) as pca_x,
    cast(pca_y as double) as pca_y,
    cast(mds_x as double) as mds_x,
    cast(mds_y as double) as mds_y,
    cast(cluster as bigint) as cluster
from {{ source('lake', 'config_embedding') }}
